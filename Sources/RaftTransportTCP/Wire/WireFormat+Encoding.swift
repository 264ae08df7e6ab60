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
        headerSize + varintSize(message.from.rawValue) + varintSize(message.to.rawValue) + varintSize(message.term.rawValue)
            + payloadSize(of: message.kind, term: message.term)
    }

    /// The size of a payload after the message header; `term` is the message's (entries of that
    /// term carry none of their own).
    static func payloadSize(of kind: Message.Kind, term: Term) -> Int {
        switch kind {
        case .preVote(let v), .requestVote(let v): return varintSize(v.lastLogIndex.rawValue) + varintSize(v.lastLogTerm.rawValue) + 1
        case .preVoteResponse, .requestVoteResponse: return 1
        case .appendEntries(let a):
            var size = varintSize(a.prevLogIndex.rawValue) + varintSize(a.prevLogTerm.rawValue) + varintSize(a.leaderCommit.rawValue)
                + varintSize(a.probe) + varintSize(UInt64(a.entries.count))
            let runs = termRuns(a.entries, messageTerm: term)
            size += varintSize(UInt64(runs.count))
            for run in runs { size += varintSize(run.term.rawValue) + varintSize(UInt64(run.count)) }
            for e in a.entries { size += varintSize(entryHeader(e)) + e.data.count }
            return size
        case .appendEntriesResponse(let r):
            var size = 1 + varintSize(r.index.rawValue)
            if hasHint(r) { size += varintSize(r.rejectHint.rawValue) + varintSize(r.rejectHintTerm.rawValue) }
            if r.probe != 0 { size += varintSize(r.probe) }
            return size
        case .heartbeat(let h): return varintSize(h.commit.rawValue) + varintSize(h.round)
        case .heartbeatResponse(let r): return varintSize(r.round)
        case .installSnapshot(let s):
            let data: Int
            switch s.data {
            case .bytes(let b): data = lengthPrefixedSize(b.count)
            case .inSenderStorage: data = 0
            case .received(let id): data = varintSize(id)
            }
            return metadataSize(s.metadata) + 1 + data
        case .forwardProposal(let f): return f.commands.reduce(varintSize(UInt64(f.commands.count))) { $0 + lengthPrefixedSize($1.count) }
        case .snapshotChunk(let c):
            return varintSize(c.transfer) + metadataSize(c.metadata) + varintSize(c.offset) + 4 + 1 + lengthPrefixedSize(c.data.count)
        case .snapshotChunkAck(let a): return varintSize(a.transfer) + varintSize(a.next) + 1
        case .readIndex(let r): return 1 + lengthPrefixedSize(r.context.count)
        case .readIndexResponse(let r): return varintSize(r.index.rawValue) + lengthPrefixedSize(r.context.count)
        case .timeoutNow: return 0
        }
    }

    /// `count` bytes behind their varint length.
    static func lengthPrefixedSize(_ count: Int) -> Int { varintSize(UInt64(count)) + count }

    static func metadataSize(_ m: SnapshotMetadata) -> Int {
        varintSize(m.index.rawValue) + varintSize(m.term.rawValue) + lengthPrefixedSize(m.confState.encoded().count)
    }

    /// An entry's header: its data length and its kind in one varint, `length << 2 | kind`
    /// (one byte for up to 31 bytes of data).
    static func entryHeader(_ e: LogEntry) -> UInt64 { UInt64(e.data.count) << 2 | UInt64(e.kind.rawValue) }

    /// Whether an append answer carries its rejection hint (it does unless both fields are zero).
    static func hasHint(_ r: AppendEntriesResponse) -> Bool { r.rejectHint != .zero || r.rejectHintTerm != .zero }

    /// The entries' terms as runs of equal terms, in order; none at all when every entry is of
    /// `messageTerm` (a leader's appends of its own term, nearly all of them).
    static func termRuns(_ entries: [LogEntry], messageTerm: Term) -> [(term: Term, count: Int)] {
        if entries.allSatisfy({ $0.term == messageTerm }) { return [] }
        var runs: [(term: Term, count: Int)] = []
        for e in entries {
            if let last = runs.last, last.term == e.term {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((e.term, 1))
            }
        }
        return runs
    }

    /// Appends `frame` to `buffer`.
    ///
    /// - Throws: ``/Raft/RaftError/Code/invalidArgument`` when the frame would exceed
    ///   `maxFrameBytes` (nothing is written), when a hello's cluster id is longer than
    ///   ``maxClusterIDBytes``, or when an append's entries do not follow its previous index one
    ///   by one (the format carries no entry index).
    public static func encode(_ frame: WireFrame, into buffer: inout ByteBuffer, maxFrameBytes: Int = defaultMaxFrameBytes) throws(RaftError) {
        let size = frameSize(of: frame)
        guard size <= maxFrameBytes else {
            throw RaftError(.invalidArgument, "a \(frame.kindName) frame of \(size) bytes exceeds the frame limit of \(maxFrameBytes) bytes")
        }
        switch frame {
        case .hello(let h):
            if h.clusterID.utf8.count > maxClusterIDBytes {
                throw RaftError(.invalidArgument, "a cluster id is at most \(maxClusterIDBytes) bytes of UTF-8; this one has \(h.clusterID.utf8.count)")
            }
        case .message(let m):
            if case .appendEntries(let a) = m.kind { try checkConsecutive(a) }
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
            buffer.writeVarint(m.from.rawValue)
            buffer.writeVarint(m.to.rawValue)
            buffer.writeVarint(m.term.rawValue)
            writePayload(m.kind, term: m.term, into: &buffer)
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

    /// The wire carries no entry index: an append's entries are `prevLogIndex + 1`, `+ 2`, ...
    /// (the log matching property, §5.3), so one that is not cannot be sent.
    static func checkConsecutive(_ a: AppendEntries) throws(RaftError) {
        for (i, e) in a.entries.enumerated() {
            let (expected, overflow) = a.prevLogIndex.rawValue.addingReportingOverflow(UInt64(i) + 1)
            guard !overflow, e.index.rawValue == expected else {
                throw RaftError(
                    .invalidArgument,
                    "an append's entry \(i) has index \(e.index), not \(overflow ? "past the largest index" : "\(expected)") (entries follow prevLogIndex \(a.prevLogIndex) one by one)")
            }
        }
    }

    static func writePayload(_ kind: Message.Kind, term: Term, into b: inout ByteBuffer) {
        switch kind {
        case .preVote(let v), .requestVote(let v):
            b.writeVarint(v.lastLogIndex.rawValue)
            b.writeVarint(v.lastLogTerm.rawValue)
            b.writeInteger(UInt8(v.leadershipTransfer ? 1 : 0))
        case .preVoteResponse(let r), .requestVoteResponse(let r):
            b.writeInteger(UInt8(r.granted ? 1 : 0))
        case .appendEntries(let a):
            b.writeVarint(a.prevLogIndex.rawValue)
            b.writeVarint(a.prevLogTerm.rawValue)
            b.writeVarint(a.leaderCommit.rawValue)
            b.writeVarint(a.probe)
            b.writeVarint(UInt64(a.entries.count))
            let runs = termRuns(a.entries, messageTerm: term)
            b.writeVarint(UInt64(runs.count))
            for run in runs {
                b.writeVarint(run.term.rawValue)
                b.writeVarint(UInt64(run.count))
            }
            for e in a.entries {
                b.writeVarint(entryHeader(e))
                b.writeBytes(e.data)
            }
        case .appendEntriesResponse(let r):
            let hint = hasHint(r)
            b.writeInteger(UInt8((r.reject ? 1 : 0) | (hint ? 2 : 0) | (r.probe != 0 ? 4 : 0)))
            b.writeVarint(r.index.rawValue)
            if hint {
                b.writeVarint(r.rejectHint.rawValue)
                b.writeVarint(r.rejectHintTerm.rawValue)
            }
            if r.probe != 0 { b.writeVarint(r.probe) }
        case .heartbeat(let h):
            b.writeVarint(h.commit.rawValue)
            b.writeVarint(h.round)
        case .heartbeatResponse(let r):
            b.writeVarint(r.round)
        case .installSnapshot(let s):
            writeMetadata(s.metadata, into: &b)
            switch s.data {
            case .bytes(let bytes):
                b.writeInteger(UInt8(0))
                writeLengthPrefixed(bytes, into: &b)
            case .inSenderStorage:
                b.writeInteger(UInt8(1))
            case .received(let id):
                b.writeInteger(UInt8(2))
                b.writeVarint(id)
            }
        case .forwardProposal(let f):
            b.writeVarint(UInt64(f.commands.count))
            for c in f.commands { writeLengthPrefixed(c, into: &b) }
        case .snapshotChunk(let c):
            b.writeVarint(c.transfer)
            writeMetadata(c.metadata, into: &b)
            b.writeVarint(c.offset)
            b.writeInteger(c.checksum)
            b.writeInteger(UInt8(c.last ? 1 : 0))
            writeLengthPrefixed(c.data, into: &b)
        case .snapshotChunkAck(let a):
            b.writeVarint(a.transfer)
            b.writeVarint(a.next)
            b.writeInteger(UInt8((a.rejected ? 1 : 0) | (a.sealing ? 2 : 0)))
        case .readIndex(let r):
            b.writeInteger(UInt8(r.confirmation == .lease ? 1 : 0))
            writeLengthPrefixed(r.context, into: &b)
        case .readIndexResponse(let r):
            b.writeVarint(r.index.rawValue)
            writeLengthPrefixed(r.context, into: &b)
        case .timeoutNow:
            break
        }
    }

    static func writeLengthPrefixed(_ bytes: [UInt8], into b: inout ByteBuffer) {
        b.writeVarint(UInt64(bytes.count))
        b.writeBytes(bytes)
    }

    static func writeMetadata(_ m: SnapshotMetadata, into b: inout ByteBuffer) {
        b.writeVarint(m.index.rawValue)
        b.writeVarint(m.term.rawValue)
        writeLengthPrefixed(m.confState.encoded(), into: &b)
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
