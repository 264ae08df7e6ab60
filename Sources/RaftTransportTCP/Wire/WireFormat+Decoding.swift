import NIOCore
import Raft

extension WireFormat {
    /// Takes one frame from the front of `buffer`, or nothing if the frame is not complete yet.
    ///
    /// A partial frame is never consumed: `buffer` is left as it was until every byte of the
    /// frame is there. The header is checked as far as it has arrived (magic, version, kind,
    /// reserved bytes, then the length against `maxFrameBytes`), so a bad or oversized frame is
    /// refused before its payload is waited for or allocated.
    ///
    /// - Throws: ``/Raft/RaftError/Code/unsupportedFormat`` for an unknown version,
    ///   ``/Raft/RaftError/Code/corruption`` for a checksum mismatch, and
    ///   ``/Raft/RaftError/Code/invalidMessage`` for anything else malformed (bad magic, an
    ///   unknown kind, reserved bytes set, a length over the limit, a payload that does not
    ///   decode or has bytes left over). After an error the connection's stream cannot be
    ///   trusted: close it.
    public static func decodeFrame(from buffer: inout ByteBuffer, maxFrameBytes: Int = defaultMaxFrameBytes) throws(RaftError) -> WireFrame? {
        let r = buffer.readerIndex
        let available = buffer.readableBytes
        for i in 0..<min(4, available) where buffer.getInteger(at: r + i, as: UInt8.self) != magic[i] {
            throw RaftError(.invalidMessage, "not a swift-raft frame: bad magic at byte \(i)")
        }
        // A hello's header always says version 1 (its layout never changes); every other frame's
        // says the version this library speaks.
        let headerVersion = available > 4 ? buffer.getInteger(at: r + 4, as: UInt8.self) : nil
        if let v = headerVersion, v != version && v != helloHeaderVersion {
            throw RaftError(.unsupportedFormat, "frame format version \(v) is not supported (this node speaks version \(version))")
        }
        var kind: FrameKind?
        if available > 5, let k = buffer.getInteger(at: r + 5, as: UInt8.self) {
            guard let known = FrameKind(rawValue: k) else {
                throw RaftError(.invalidMessage, "unknown frame kind 0x\(String(k, radix: 16))")
            }
            if let v = headerVersion, v != (known == .hello ? helloHeaderVersion : version) {
                throw RaftError(
                    .unsupportedFormat,
                    "a \(known) frame of format version \(v) is not supported (this node speaks version \(version))")
            }
            kind = known
        }
        if available >= 8, let reserved = buffer.getInteger(at: r + 6, as: UInt16.self), reserved != 0 {
            throw RaftError(.invalidMessage, "reserved header bytes are 0x\(String(reserved, radix: 16)), not zero")
        }
        guard available >= headerSize, let kind, let length32 = buffer.getInteger(at: r + 8, as: UInt32.self),
            let expected = buffer.getInteger(at: r + 12, as: UInt32.self)
        else { return nil }
        // Checked before anything waits for the payload: a 4 GiB length is refused right here.
        let length = Int(length32)
        guard length <= maxFrameBytes - headerSize else {
            throw RaftError(.invalidMessage, "a \(kind) frame of \(headerSize + length) bytes exceeds the frame limit of \(maxFrameBytes) bytes")
        }
        guard available >= headerSize + length else { return nil }
        let actual = buffer.withUnsafeReadableBytes { all -> UInt32 in
            let head = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: all[0..<12]))
            return CRC32C.update(head, UnsafeRawBufferPointer(rebasing: all[headerSize..<(headerSize + length)]))
        }
        guard actual == expected else {
            throw RaftError(.corruption, "a \(kind) frame's checksum is 0x\(String(actual, radix: 16)), the header says 0x\(String(expected, radix: 16))")
        }
        var payload = PayloadReader(buffer: buffer.getSlice(at: r + headerSize, length: length)!, kind: kind)
        let frame = try payload.frame()
        try payload.finish()
        buffer.moveReaderIndex(forwardBy: headerSize + length)
        return frame
    }
}

/// Reads a frame's payload; every read is bounds-checked and fails with a typed error.
struct PayloadReader {
    var buffer: ByteBuffer
    let kind: WireFormat.FrameKind

    func malformed(_ what: String) -> RaftError {
        RaftError(.invalidMessage, "malformed \(kind) frame: \(what)")
    }

    mutating func u8() throws(RaftError) -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func u32() throws(RaftError) -> UInt32 {
        guard let v = buffer.readInteger(as: UInt32.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func u64() throws(RaftError) -> UInt64 {
        guard let v = buffer.readInteger(as: UInt64.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func bool(_ field: String) throws(RaftError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw malformed("\(field) is \(v), not 0 or 1")
        }
    }

    /// `count` bytes; the count is checked against what the payload holds before allocating.
    mutating func bytes(_ count: UInt32, _ field: String) throws(RaftError) -> [UInt8] {
        guard Int(count) <= buffer.readableBytes else {
            throw malformed("\(field) of \(count) bytes is longer than the \(buffer.readableBytes) bytes left")
        }
        return buffer.readBytes(length: Int(count))!
    }

    /// A count of items of at least `minimumSize` bytes each, checked against what is left
    /// before any array is reserved for them.
    mutating func count(_ field: String, minimumSize: Int) throws(RaftError) -> Int {
        let n = Int(try u32())
        guard n <= buffer.readableBytes / minimumSize else {
            throw malformed("\(n) \(field) cannot fit in the \(buffer.readableBytes) bytes left")
        }
        return n
    }

    func finish() throws(RaftError) {
        guard buffer.readableBytes == 0 else { throw malformed("\(buffer.readableBytes) bytes left over after the payload") }
    }

    mutating func frame() throws(RaftError) -> WireFrame {
        if kind == .hello { return .hello(try hello()) }
        let from = NodeID(rawValue: try u64())
        let to = NodeID(rawValue: try u64())
        let term = Term(rawValue: try u64())
        return .message(Message(from: from, to: to, term: term, kind: try messageKind()))
    }

    mutating func hello() throws(RaftError) -> Hello {
        let version = try u8()
        let laneByte = try u8()
        guard let lane = Hello.Lane(rawValue: laneByte) else { throw malformed("unknown lane \(laneByte)") }
        let sender = NodeID(rawValue: try u64())
        let receiver = NodeID(rawValue: try u64())
        let idBytes = try bytes(UInt32(try u8()), "cluster id")
        guard let clusterID = String(validating: idBytes, as: UTF8.self) else { throw malformed("the cluster id is not UTF-8") }
        return Hello(clusterID: clusterID, sender: sender, receiver: receiver, version: version, lane: lane)
    }

    mutating func messageKind() throws(RaftError) -> Message.Kind {
        switch kind {
        case .hello: throw malformed("a hello inside a message")
        case .preVote: return .preVote(try requestVote())
        case .requestVote: return .requestVote(try requestVote())
        case .preVoteResponse: return .preVoteResponse(RequestVoteResponse(granted: try bool("granted")))
        case .requestVoteResponse: return .requestVoteResponse(RequestVoteResponse(granted: try bool("granted")))
        case .appendEntries:
            let prevIndex = LogIndex(rawValue: try u64())
            let prevTerm = Term(rawValue: try u64())
            let commit = LogIndex(rawValue: try u64())
            let probe = try u64()
            let n = try count("entries", minimumSize: 21)
            var entries: [LogEntry] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let term = Term(rawValue: try u64())
                let index = LogIndex(rawValue: try u64())
                let kindByte = try u8()
                guard let entryKind = LogEntry.Kind(rawValue: kindByte) else { throw malformed("unknown entry kind \(kindByte)") }
                entries.append(LogEntry(term: term, index: index, kind: entryKind, data: try bytes(try u32(), "entry data")))
            }
            return .appendEntries(AppendEntries(prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, leaderCommit: commit, probe: probe))
        case .appendEntriesResponse:
            let index = LogIndex(rawValue: try u64())
            let reject = try bool("reject")
            let hint = LogIndex(rawValue: try u64())
            let hintTerm = Term(rawValue: try u64())
            return .appendEntriesResponse(AppendEntriesResponse(index: index, reject: reject, rejectHint: hint, rejectHintTerm: hintTerm, probe: try u64()))
        case .heartbeat:
            let commit = LogIndex(rawValue: try u64())
            return .heartbeat(Heartbeat(commit: commit, round: try u64()))
        case .heartbeatResponse:
            return .heartbeatResponse(HeartbeatResponse(round: try u64()))
        case .installSnapshot:
            let metadata = try snapshotMetadata()
            let data: SnapshotData
            switch try u8() {
            case 0: data = .bytes(try bytes(try u32(), "snapshot data"))
            case 1: data = .inSenderStorage
            case 2: data = .received(id: try u64())
            case let tag: throw malformed("unknown snapshot data tag \(tag)")
            }
            return .installSnapshot(InstallSnapshot(metadata: metadata, data: data))
        case .forwardProposal:
            let n = try count("commands", minimumSize: 4)
            var commands: [[UInt8]] = []
            commands.reserveCapacity(n)
            for _ in 0..<n { commands.append(try bytes(try u32(), "command")) }
            return .forwardProposal(ForwardProposal(commands: commands))
        case .snapshotChunk:
            let transfer = try u64()
            let metadata = try snapshotMetadata()
            let offset = try u64()
            let checksum = try u32()
            let last = try bool("last")
            let data = try bytes(try u32(), "chunk data")
            return .snapshotChunk(SnapshotChunk(transfer: transfer, metadata: metadata, offset: offset, data: data, checksum: checksum, last: last))
        case .snapshotChunkAck:
            let transfer = try u64()
            let next = try u64()
            let flags = try u8()
            guard flags & ~3 == 0 else { throw malformed("unknown acknowledgement flags 0x\(String(flags, radix: 16))") }
            return .snapshotChunkAck(SnapshotChunkAck(transfer: transfer, next: next, rejected: flags & 1 != 0, sealing: flags & 2 != 0))
        case .readIndex:
            let confirmation: ReadConfirmation
            switch try u8() {
            case 0: confirmation = .quorum
            case 1: confirmation = .lease
            case let tag: throw malformed("unknown read confirmation \(tag)")
            }
            return .readIndex(ReadIndexRequest(context: try bytes(try u32(), "read context"), confirmation: confirmation))
        case .readIndexResponse:
            let index = LogIndex(rawValue: try u64())
            return .readIndexResponse(ReadIndexResponse(context: try bytes(try u32(), "read context"), index: index))
        case .timeoutNow:
            return .timeoutNow
        }
    }

    mutating func requestVote() throws(RaftError) -> RequestVote {
        let index = LogIndex(rawValue: try u64())
        let term = Term(rawValue: try u64())
        return RequestVote(lastLogIndex: index, lastLogTerm: term, leadershipTransfer: try bool("leadershipTransfer"))
    }

    mutating func snapshotMetadata() throws(RaftError) -> SnapshotMetadata {
        let index = LogIndex(rawValue: try u64())
        let term = Term(rawValue: try u64())
        let blob = try bytes(try u32(), "membership")
        let confState: ConfState
        do { confState = try ConfState(decoding: blob[...]) } catch { throw malformed(error.message) }
        return SnapshotMetadata(index: index, term: term, confState: confState)
    }
}
