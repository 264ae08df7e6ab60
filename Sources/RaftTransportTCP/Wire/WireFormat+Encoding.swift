import NIOCore
import Raft

extension WireFormat {
    /// The largest frame limit a transport accepts (1 GiB): a length always fits the header's
    /// 32-bit field with room to spare.
    public static let maximumMaxFrameBytes = 1 << 30

    /// The size of `frame` once encoded, header included.
    public static func frameSize(of frame: WireFrame) -> Int {
        switch frame {
        case .hello(let h): return headerSize + 19 + h.clusterID.utf8.count
        case .message(let m): return frameSize(of: m)
        }
    }

    /// The size of the frame carrying `message`, header included.
    public static func frameSize(of message: Message) -> Int {
        headerSize + 24 + payloadSize(of: message.kind)
    }

    static func payloadSize(of kind: Message.Kind) -> Int {
        switch kind {
        case .preVote, .requestVote: return 17
        case .preVoteResponse, .requestVoteResponse: return 1
        case .appendEntries(let a): return 36 + a.entries.reduce(0) { $0 + 21 + $1.data.count }
        case .appendEntriesResponse: return 33
        case .heartbeat: return 16
        case .heartbeatResponse: return 8
        case .installSnapshot(let s):
            let data: Int
            switch s.data {
            case .bytes(let b): data = 4 + b.count
            case .inSenderStorage: data = 0
            case .received: data = 8
            }
            return metadataSize(s.metadata) + 1 + data
        case .forwardProposal(let f): return 4 + f.commands.reduce(0) { $0 + 4 + $1.count }
        case .snapshotChunk(let c): return 25 + metadataSize(c.metadata) + c.data.count
        case .snapshotChunkAck: return 17
        case .readIndex(let r): return 5 + r.context.count
        case .readIndexResponse(let r): return 12 + r.context.count
        case .timeoutNow: return 0
        }
    }

    static func metadataSize(_ m: SnapshotMetadata) -> Int { 20 + m.confState.encoded().count }

    /// Appends `frame` to `buffer`.
    ///
    /// - Throws: ``/Raft/RaftError/Code/invalidArgument`` when the frame would exceed
    ///   `maxFrameBytes` (nothing is written), or when a hello's cluster id is longer than
    ///   ``maxClusterIDBytes``.
    public static func encode(_ frame: WireFrame, into buffer: inout ByteBuffer, maxFrameBytes: Int = defaultMaxFrameBytes) throws(RaftError) {
        let size = frameSize(of: frame)
        guard size <= maxFrameBytes else {
            throw RaftError(.invalidArgument, "a \(frame.kindName) frame of \(size) bytes exceeds the frame limit of \(maxFrameBytes) bytes")
        }
        if case .hello(let h) = frame, h.clusterID.utf8.count > maxClusterIDBytes {
            throw RaftError(.invalidArgument, "a cluster id is at most \(maxClusterIDBytes) bytes of UTF-8; this one has \(h.clusterID.utf8.count)")
        }
        let start = buffer.writerIndex
        buffer.reserveCapacity(minimumWritableBytes: size)
        buffer.writeBytes(magic)
        if case .hello = frame { buffer.writeInteger(helloHeaderVersion) } else { buffer.writeInteger(version) }
        switch frame {
        case .hello(let h):
            buffer.writeInteger(FrameKind.hello.rawValue)
            writeHeaderTail(into: &buffer, payload: size - headerSize)
            buffer.writeInteger(h.version)
            buffer.writeInteger(h.lane.rawValue)
            buffer.writeInteger(h.sender.rawValue)
            buffer.writeInteger(h.receiver.rawValue)
            buffer.writeInteger(UInt8(h.clusterID.utf8.count))
            buffer.writeString(h.clusterID)
        case .message(let m):
            buffer.writeInteger(FrameKind(m.kind).rawValue)
            writeHeaderTail(into: &buffer, payload: size - headerSize)
            buffer.writeInteger(m.from.rawValue)
            buffer.writeInteger(m.to.rawValue)
            buffer.writeInteger(m.term.rawValue)
            writePayload(m.kind, into: &buffer)
        }
        let checksum = buffer.withUnsafeReadableBytes { all -> UInt32 in
            let base = start - buffer.readerIndex
            let head = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: all[base..<(base + 12)]))
            return CRC32C.update(head, UnsafeRawBufferPointer(rebasing: all[(base + headerSize)..<(base + size)]))
        }
        buffer.setInteger(checksum, at: start + 12)
    }

    /// Reserved bytes, the payload length and a checksum placeholder (set once the payload is
    /// written).
    static func writeHeaderTail(into buffer: inout ByteBuffer, payload: Int) {
        buffer.writeInteger(UInt16(0))
        buffer.writeInteger(UInt32(payload))
        buffer.writeInteger(UInt32(0))
    }

    static func writePayload(_ kind: Message.Kind, into b: inout ByteBuffer) {
        switch kind {
        case .preVote(let v), .requestVote(let v):
            b.writeInteger(v.lastLogIndex.rawValue)
            b.writeInteger(v.lastLogTerm.rawValue)
            b.writeInteger(UInt8(v.leadershipTransfer ? 1 : 0))
        case .preVoteResponse(let r), .requestVoteResponse(let r):
            b.writeInteger(UInt8(r.granted ? 1 : 0))
        case .appendEntries(let a):
            b.writeInteger(a.prevLogIndex.rawValue)
            b.writeInteger(a.prevLogTerm.rawValue)
            b.writeInteger(a.leaderCommit.rawValue)
            b.writeInteger(a.probe)
            b.writeInteger(UInt32(a.entries.count))
            for e in a.entries {
                b.writeInteger(e.term.rawValue)
                b.writeInteger(e.index.rawValue)
                b.writeInteger(e.kind.rawValue)
                b.writeInteger(UInt32(e.data.count))
                b.writeBytes(e.data)
            }
        case .appendEntriesResponse(let r):
            b.writeInteger(r.index.rawValue)
            b.writeInteger(UInt8(r.reject ? 1 : 0))
            b.writeInteger(r.rejectHint.rawValue)
            b.writeInteger(r.rejectHintTerm.rawValue)
            b.writeInteger(r.probe)
        case .heartbeat(let h):
            b.writeInteger(h.commit.rawValue)
            b.writeInteger(h.round)
        case .heartbeatResponse(let r):
            b.writeInteger(r.round)
        case .installSnapshot(let s):
            writeMetadata(s.metadata, into: &b)
            switch s.data {
            case .bytes(let bytes):
                b.writeInteger(UInt8(0))
                b.writeInteger(UInt32(bytes.count))
                b.writeBytes(bytes)
            case .inSenderStorage:
                b.writeInteger(UInt8(1))
            case .received(let id):
                b.writeInteger(UInt8(2))
                b.writeInteger(id)
            }
        case .forwardProposal(let f):
            b.writeInteger(UInt32(f.commands.count))
            for c in f.commands {
                b.writeInteger(UInt32(c.count))
                b.writeBytes(c)
            }
        case .snapshotChunk(let c):
            b.writeInteger(c.transfer)
            writeMetadata(c.metadata, into: &b)
            b.writeInteger(c.offset)
            b.writeInteger(c.checksum)
            b.writeInteger(UInt8(c.last ? 1 : 0))
            b.writeInteger(UInt32(c.data.count))
            b.writeBytes(c.data)
        case .snapshotChunkAck(let a):
            b.writeInteger(a.transfer)
            b.writeInteger(a.next)
            b.writeInteger(UInt8((a.rejected ? 1 : 0) | (a.sealing ? 2 : 0)))
        case .readIndex(let r):
            b.writeInteger(UInt8(r.confirmation == .lease ? 1 : 0))
            b.writeInteger(UInt32(r.context.count))
            b.writeBytes(r.context)
        case .readIndexResponse(let r):
            b.writeInteger(r.index.rawValue)
            b.writeInteger(UInt32(r.context.count))
            b.writeBytes(r.context)
        case .timeoutNow:
            break
        }
    }

    static func writeMetadata(_ m: SnapshotMetadata, into b: inout ByteBuffer) {
        b.writeInteger(m.index.rawValue)
        b.writeInteger(m.term.rawValue)
        let conf = m.confState.encoded()
        b.writeInteger(UInt32(conf.count))
        b.writeBytes(conf)
    }
}

extension WireFrame {
    /// The frame kind's name, for errors and logs.
    var kindName: String {
        switch self {
        case .hello: return "hello"
        case .message(let m): return "\(WireFormat.FrameKind(m.kind))"
        }
    }
}
