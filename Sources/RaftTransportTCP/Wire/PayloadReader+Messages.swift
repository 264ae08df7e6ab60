import NIOCore
import Raft

extension PayloadReader {
    /// The payload after the message header; `term` is the message's.
    mutating func messageKind(term: Term) throws(RaftError) -> Message.Kind {
        switch kind {
        case .hello: throw malformed("a hello inside a message")
        case .preVote: return .preVote(try requestVote())
        case .requestVote: return .requestVote(try requestVote())
        case .preVoteResponse: return .preVoteResponse(RequestVoteResponse(granted: try bool("granted")))
        case .requestVoteResponse: return .requestVoteResponse(RequestVoteResponse(granted: try bool("granted")))
        case .appendEntries: return .appendEntries(try appendEntries(term: term))
        case .appendEntriesResponse: return .appendEntriesResponse(try appendEntriesResponse())
        case .heartbeat:
            let commit = try self.index("commit")
            return .heartbeat(Heartbeat(commit: commit, round: try varint("round")))
        case .heartbeatResponse:
            return .heartbeatResponse(HeartbeatResponse(round: try varint("round")))
        case .installSnapshot:
            let metadata = try snapshotMetadata()
            let data: SnapshotData
            switch try u8() {
            case 0: data = .bytes(try lengthPrefixed("snapshot data"))
            case 1: data = .inSenderStorage
            case 2: data = .received(id: try varint("received snapshot id"))
            case let tag: throw malformed("unknown snapshot data tag \(tag)")
            }
            return .installSnapshot(InstallSnapshot(metadata: metadata, data: data))
        case .forwardProposal:
            let n = try count("commands", minimumSize: 1)
            var commands: [[UInt8]] = []
            commands.reserveCapacity(n)
            for _ in 0..<n { commands.append(try lengthPrefixed("command")) }
            return .forwardProposal(ForwardProposal(commands: commands))
        case .snapshotChunk:
            let transfer = try varint("transfer")
            let metadata = try snapshotMetadata()
            let offset = try varint("offset")
            let checksum = try u32()
            let last = try bool("last")
            let data = try lengthPrefixed("chunk data")
            return .snapshotChunk(SnapshotChunk(transfer: transfer, metadata: metadata, offset: offset, data: data, checksum: checksum, last: last))
        case .snapshotChunkAck:
            let transfer = try varint("transfer")
            let next = try varint("next offset")
            let flags = try flags("acknowledgement", known: 3)
            return .snapshotChunkAck(SnapshotChunkAck(transfer: transfer, next: next, rejected: flags & 1 != 0, sealing: flags & 2 != 0))
        case .readIndex:
            let confirmation: ReadConfirmation
            switch try u8() {
            case 0: confirmation = .quorum
            case 1: confirmation = .lease
            case let tag: throw malformed("unknown read confirmation \(tag)")
            }
            return .readIndex(ReadIndexRequest(context: try lengthPrefixed("read context"), confirmation: confirmation))
        case .readIndexResponse:
            let index = try self.index("read index")
            return .readIndexResponse(ReadIndexResponse(context: try lengthPrefixed("read context"), index: index))
        case .timeoutNow:
            return .timeoutNow
        }
    }

    mutating func requestVote() throws(RaftError) -> RequestVote {
        let index = try self.index("last log index")
        let term = try self.term("last log term")
        return RequestVote(lastLogIndex: index, lastLogTerm: term, leadershipTransfer: try bool("leadershipTransfer"))
    }

    /// An append: its entries' indexes follow `prevLogIndex`, and their terms are the message's
    /// unless runs of other terms are given.
    mutating func appendEntries(term: Term) throws(RaftError) -> AppendEntries {
        let prevIndex = try self.index("previous log index")
        let prevTerm = try self.term("previous log term")
        let commit = try self.index("leader commit")
        let probe = try varint("probe")
        // Each entry takes at least its one-byte header.
        let n = try count("entries", minimumSize: 1)
        guard prevIndex.rawValue <= UInt64.max - UInt64(n) else {
            throw malformed("\(n) entries after index \(prevIndex) run past the largest index")
        }
        let terms = try termRuns(entries: n, messageTerm: term)
        var entries: [LogEntry] = []
        entries.reserveCapacity(n)
        var run = 0
        var leftInRun = terms.first?.count ?? n
        for i in 0..<n {
            if leftInRun == 0 {
                run += 1
                leftInRun = terms[run].count
            }
            leftInRun -= 1
            let header = try varint("an entry header")
            guard let entryKind = LogEntry.Kind(rawValue: UInt8(header & 3)) else { throw malformed("unknown entry kind \(header & 3)") }
            let data = try bytes(header >> 2, "entry data")
            let entryTerm = terms.isEmpty ? term : terms[run].term
            entries.append(LogEntry(term: entryTerm, index: LogIndex(rawValue: prevIndex.rawValue + UInt64(i) + 1), kind: entryKind, data: data))
        }
        return AppendEntries(prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, leaderCommit: commit, probe: probe)
    }

    /// The term runs of an append of `entries` entries: none (every entry of the message's
    /// term), or runs of at least one entry each that add up to `entries`, where no two
    /// neighbours share a term and a single run is not of the message's term (that form is
    /// "none").
    mutating func termRuns(entries: Int, messageTerm: Term) throws(RaftError) -> [(term: Term, count: Int)] {
        // A run takes at least two bytes.
        let r = try count("term runs", minimumSize: 2)
        if r == 0 { return [] }
        guard r <= entries else { throw malformed("\(r) term runs for \(entries) entries") }
        var runs: [(term: Term, count: Int)] = []
        runs.reserveCapacity(r)
        var total = 0
        for _ in 0..<r {
            let t = try self.term("a run's term")
            let length = try varint("a run's length")
            guard length >= 1, length <= UInt64(entries - total) else { throw malformed("a term run of \(length) entries") }
            if let last = runs.last, last.term == t { throw malformed("two neighbouring term runs of term \(t)") }
            runs.append((t, Int(length)))
            total += Int(length)
        }
        guard total == entries else { throw malformed("term runs cover \(total) of \(entries) entries") }
        if r == 1, runs[0].term == messageTerm { throw malformed("a single term run of the message's term") }
        return runs
    }

    /// An append answer: flags (bit 0 reject, bit 1 a hint follows, bit 2 a probe number
    /// follows), the index, then what the flags announce (never announced as zero).
    mutating func appendEntriesResponse() throws(RaftError) -> AppendEntriesResponse {
        let flags = try flags("append answer", known: 7)
        let index = try self.index("index")
        var hint = LogIndex.zero
        var hintTerm = Term.zero
        var probe: UInt64 = 0
        if flags & 2 != 0 {
            hint = try self.index("reject hint")
            hintTerm = try self.term("reject hint term")
            if hint == .zero, hintTerm == .zero { throw malformed("a reject hint announced but zero") }
        }
        if flags & 4 != 0 {
            probe = try varint("probe")
            if probe == 0 { throw malformed("a probe number announced but zero") }
        }
        return AppendEntriesResponse(index: index, reject: flags & 1 != 0, rejectHint: hint, rejectHintTerm: hintTerm, probe: probe)
    }

    mutating func snapshotMetadata() throws(RaftError) -> SnapshotMetadata {
        let index = try self.index("snapshot index")
        let term = try self.term("snapshot term")
        let blob = try lengthPrefixed("membership")
        let confState: ConfState
        do { confState = try ConfState(decoding: blob[...]) } catch { throw malformed(error.message) }
        return SnapshotMetadata(index: index, term: term, confState: confState)
    }
}
