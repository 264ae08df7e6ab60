import NIOCore
import Raft
import RaftTransportTCP

/// One message of every kind (and every variant of a kind's payload), with values that use the
/// whole width of their fields, so a round trip proves every byte is carried.
enum WireSamples {
    static let metadata = SnapshotMetadata(index: LogIndex(rawValue: 1 << 40), term: 77, confState: ConfState(voters: [1, 2, 3, NodeID(rawValue: 1 << 63)]))
    /// A joint membership with learners and addresses: every field of the membership's form.
    static let jointMetadata = SnapshotMetadata(
        index: 5, term: 2,
        confState: ConfState(
            voters: [1, 2, 4], learners: [3, 9], outgoingVoters: [1, 2, 3],
            addresses: [1: "10.0.0.1:7000", 4: "[::1]:7004", 9: "é.example:1"], autoLeave: false))

    static let kinds: [Message.Kind] = [
        .preVote(RequestVote(lastLogIndex: 12, lastLogTerm: 3)),
        .preVoteResponse(RequestVoteResponse(granted: true)),
        .requestVote(RequestVote(lastLogIndex: LogIndex(rawValue: .max), lastLogTerm: Term(rawValue: .max))),
        .requestVoteResponse(RequestVoteResponse(granted: false)),
        .appendEntries(AppendEntries(prevLogIndex: 9, prevLogTerm: 2, entries: [], leaderCommit: 8)),
        .appendEntries(
            AppendEntries(
                prevLogIndex: 9, prevLogTerm: 2,
                entries: [
                    LogEntry(term: 3, index: 10, kind: .noop),
                    LogEntry(term: 3, index: 11, data: Array("k=v".utf8)),
                    LogEntry(term: 3, index: 12, data: (0..<300).map { UInt8(truncatingIfNeeded: $0) }),
                    LogEntry(term: 3, index: 13, kind: .membership, data: jointMetadata.confState.encoded()),
                ],
                leaderCommit: 9, probe: 5)),
        .appendEntriesResponse(AppendEntriesResponse(index: 11)),
        .appendEntriesResponse(AppendEntriesResponse(index: 40, reject: true, rejectHint: 30, rejectHintTerm: 4, probe: 9)),
        .heartbeat(Heartbeat(commit: 8)),
        .heartbeat(Heartbeat(commit: 8, round: 1 << 50)),
        .heartbeatResponse(HeartbeatResponse(round: 17)),
        .installSnapshot(InstallSnapshot(metadata: metadata, data: .bytes([1, 2, 3, 4, 5]))),
        .installSnapshot(InstallSnapshot(metadata: metadata, data: .inSenderStorage)),
        .installSnapshot(InstallSnapshot(metadata: metadata, data: .received(id: 99))),
        .installSnapshot(InstallSnapshot(metadata: jointMetadata, data: .inSenderStorage)),
        .installSnapshot(
            InstallSnapshot(metadata: SnapshotMetadata(index: 0, term: 0, confState: ConfState(voters: [])), data: .bytes([]))),
        .forwardProposal(ForwardProposal(commands: [])),
        .forwardProposal(ForwardProposal(commands: [[], Array("a=1".utf8), [0xFF]])),
        .snapshotChunk(SnapshotChunk(transfer: 1 << 60, metadata: metadata, offset: 0, data: [9, 8, 7], checksum: 0xDEAD_BEEF, last: false)),
        .snapshotChunk(SnapshotChunk(transfer: 3, metadata: metadata, offset: 1 << 33, data: [], checksum: 0, last: true)),
        .snapshotChunkAck(SnapshotChunkAck(transfer: 3, next: 1 << 33)),
        .snapshotChunkAck(SnapshotChunkAck(transfer: 3, next: 0, rejected: true)),
        .snapshotChunkAck(SnapshotChunkAck(transfer: 3, next: 12, sealing: true)),
        .snapshotChunkAck(SnapshotChunkAck(transfer: 3, next: 12, rejected: true, sealing: true)),
        .readIndex(ReadIndexRequest(context: [0, 0, 0, 0, 0, 0, 0, 7])),
        .readIndex(ReadIndexRequest(context: Array(repeating: 0xAB, count: 300), confirmation: .lease)),
        .readIndexResponse(ReadIndexResponse(context: [1], index: 42)),
        .readIndexResponse(ReadIndexResponse(context: [0, 0, 0, 0, 0, 0, 0, 9], index: LogIndex(rawValue: 1 << 40))),
        .requestVote(RequestVote(lastLogIndex: 7, lastLogTerm: 2, leadershipTransfer: true)),
        .timeoutNow,
    ]

    /// Every kind, with ids and terms of many widths (a one-byte varint for the first, ten bytes
    /// for `to`), then ``compactEdges``.
    static let messages: [Message] =
        kinds.enumerated().map { k, kind in
            Message(from: NodeID(rawValue: UInt64(k + 1)), to: NodeID(rawValue: .max - UInt64(k)), term: Term(rawValue: UInt64(k) << 32), kind: kind)
        } + compactEdges

    /// The edges of format version 3's compact forms: entries of the message's own term (no
    /// term runs) and of several terms, data lengths around the one-byte entry header (31 and 32
    /// bytes), varints at their byte boundaries (127, 128, 2^63, `UInt64.max`), indexes ending at
    /// the largest one, and append answers with each optional field alone.
    static let compactEdges: [Message] = [
        Message(
            from: 1, to: 2, term: 7,
            kind: .appendEntries(
                AppendEntries(
                    prevLogIndex: 99, prevLogTerm: 6,
                    entries: [
                        LogEntry(term: 7, index: 100, data: []),
                        LogEntry(term: 7, index: 101, data: Array(repeating: 0x31, count: 31)),
                        LogEntry(term: 7, index: 102, data: Array(repeating: 0x32, count: 32)),
                    ],
                    leaderCommit: 127, probe: 128))),
        Message(
            from: 127, to: 128, term: 9,
            kind: .appendEntries(
                AppendEntries(
                    prevLogIndex: 10, prevLogTerm: 4,
                    entries: [
                        LogEntry(term: 4, index: 11, data: [1]), LogEntry(term: 4, index: 12, kind: .noop),
                        LogEntry(term: 5, index: 13, data: [2, 3]), LogEntry(term: 9, index: 14, kind: .noop),
                        LogEntry(term: 9, index: 15, data: [4]),
                    ],
                    leaderCommit: 12))),
        // Entries of the message's term after one of another: two runs, the last of the message's term.
        Message(
            from: 3, to: 1, term: 2,
            kind: .appendEntries(
                AppendEntries(
                    prevLogIndex: 0, prevLogTerm: 0, entries: [LogEntry(term: 1, index: 1, kind: .noop), LogEntry(term: 2, index: 2, kind: .noop)],
                    leaderCommit: 0))),
        Message(
            from: NodeID(rawValue: .max), to: NodeID(rawValue: 1 << 63), term: Term(rawValue: .max),
            kind: .appendEntries(
                AppendEntries(
                    prevLogIndex: LogIndex(rawValue: .max - 2), prevLogTerm: Term(rawValue: .max),
                    entries: [
                        LogEntry(term: Term(rawValue: .max), index: LogIndex(rawValue: .max - 1), data: [0xFF]),
                        LogEntry(term: Term(rawValue: .max), index: LogIndex(rawValue: .max), kind: .membership, data: []),
                    ],
                    leaderCommit: LogIndex(rawValue: .max), probe: .max))),
        Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: 0))),
        Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: 5, reject: true))),
        Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: 5, rejectHint: 3))),
        Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: 5, reject: true, rejectHintTerm: 2))),
        Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: LogIndex(rawValue: .max), probe: 1))),
        Message(from: 1, to: 2, term: 0, kind: .heartbeat(Heartbeat(commit: LogIndex(rawValue: 1 << 63), round: .max))),
        Message(from: 1, to: 2, term: 0, kind: .heartbeatResponse(HeartbeatResponse(round: 0))),
    ]

    static let hellos: [Hello] = [
        Hello(clusterID: "prod-kv", sender: 1, receiver: 2),
        Hello(clusterID: "", sender: 3, receiver: 1, version: 200, lane: .snapshots),
        Hello(clusterID: String(repeating: "é", count: 127), sender: NodeID(rawValue: .max), receiver: 0),
    ]

    static let frames: [WireFrame] = hellos.map { .hello($0) } + messages.map { .message($0) }

    static func encoded(_ frame: WireFrame) throws -> ByteBuffer {
        var b = ByteBuffer()
        try WireFormat.encode(frame, into: &b)
        return b
    }

    static func encoded(_ frames: [WireFrame]) throws -> ByteBuffer {
        var b = ByteBuffer()
        for f in frames { try WireFormat.encode(f, into: &b) }
        return b
    }
}
