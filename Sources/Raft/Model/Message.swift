/// A message between two Raft peers.
///
/// Wire messages and local commands are different types: everything here crosses the network;
/// `tick()`, `propose`, `campaign` and the like are methods on ``RaftCore``.
public struct Message: Sendable, Hashable {
    /// The sender.
    public var from: NodeID
    /// The receiver.
    public var to: NodeID
    /// The sender's current term, except where a kind documents otherwise (a granted pre-vote
    /// answers with the term the pre-candidate asked about).
    public var term: Term
    /// What the message says.
    public var kind: Kind

    /// The largest term or index a valid message carries (2^62); larger values are refused
    /// as malformed, so arithmetic on them can never overflow.
    public static let maxTermOrIndex: UInt64 = 1 << 62

    /// Creates a message.
    public init(from: NodeID, to: NodeID, term: Term, kind: Kind) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }

    /// The kinds of message, named as in the Raft paper, each with its own payload.
    public enum Kind: Sendable, Hashable {
        /// A pre-candidate asks whether it could win an election (thesis §9.6). Carries the term it
        /// would campaign in; receivers do not change their own term.
        case preVote(RequestVote)
        /// The answer to ``preVote(_:)``.
        case preVoteResponse(RequestVoteResponse)
        /// A candidate asks for a vote (§5.2).
        case requestVote(RequestVote)
        /// The answer to ``requestVote(_:)``.
        case requestVoteResponse(RequestVoteResponse)
        /// The leader replicates entries (§5.3); with no entries it still carries the commit index.
        case appendEntries(AppendEntries)
        /// A follower's answer to ``appendEntries(_:)`` or ``installSnapshot(_:)``.
        case appendEntriesResponse(AppendEntriesResponse)
        /// The leader asserts its leadership and, safely, its commit index.
        case heartbeat(Heartbeat)
        /// A follower's answer to ``heartbeat(_:)``.
        case heartbeatResponse(HeartbeatResponse)
        /// The leader sends a snapshot to a follower behind its compacted log (§7).
        case installSnapshot(InstallSnapshot)
        /// A follower hands client commands to the leader.
        case forwardProposal(ForwardProposal)
        /// A piece of a snapshot streamed by a node runtime (``RaftNode``), which writes the
        /// pieces into a file and steps one ``installSnapshot(_:)`` naming it into its core once the
        /// file is complete. The core refuses these kinds.
        case snapshotChunk(SnapshotChunk)
        /// The receiver's answer to ``snapshotChunk(_:)``: where the transfer stands.
        case snapshotChunkAck(SnapshotChunkAck)
        /// A follower asks the leader for a read index on behalf of its own client (thesis
        /// §6.4: followers serve linearizable reads once they have applied the leader's commit
        /// index).
        case readIndex(ReadIndexRequest)
        /// The leader's answer to ``readIndex(_:)``, sent only once it confirmed its leadership for
        /// the request (a quorum's heartbeat answers, or a valid lease when asked for one). A
        /// leader that cannot answer sends nothing: the follower's caller times out or retries.
        case readIndexResponse(ReadIndexResponse)
        /// A leader handing leadership over (``RaftCore/transferLeadership(to:)``) tells the
        /// target, once it holds the whole log, to campaign now: without PreVote, and with vote
        /// requests marked ``RequestVote/leadershipTransfer`` so voters inside the leader's lease
        /// answer them (thesis §3.10).
        case timeoutNow
    }
}

/// Payload of ``Message/Kind/requestVote(_:)`` and ``Message/Kind/preVote(_:)``.
public struct RequestVote: Sendable, Hashable {
    /// Index of the candidate's last log entry.
    public var lastLogIndex: LogIndex
    /// Term of the candidate's last log entry.
    public var lastLogTerm: Term
    /// The candidate campaigns because its leader asked it to (``Message/Kind/timeoutNow``):
    /// voters answer even while they hear from that leader, whose lease it ended itself.
    public var leadershipTransfer: Bool

    /// Creates the payload.
    public init(lastLogIndex: LogIndex, lastLogTerm: Term, leadershipTransfer: Bool = false) {
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.leadershipTransfer = leadershipTransfer
    }
}

/// Payload of vote and pre-vote answers.
public struct RequestVoteResponse: Sendable, Hashable {
    /// Whether the vote is granted.
    public var granted: Bool

    /// Creates the payload.
    public init(granted: Bool) { self.granted = granted }
}

/// Payload of ``Message/Kind/appendEntries(_:)``.
public struct AppendEntries: Sendable, Hashable {
    /// Index of the entry immediately before `entries`.
    public var prevLogIndex: LogIndex
    /// Term of that entry: the consistency check (§5.3).
    public var prevLogTerm: Term
    /// The entries to append, in index order, starting at `prevLogIndex + 1`.
    public var entries: [LogEntry]
    /// The leader's commit index. A follower commits only up to the last entry this message
    /// proved to match the leader's log.
    public var leaderCommit: LogIndex
    /// Nonzero on a probe (an append sent while the leader searches for where the logs agree):
    /// a number the leader increases with every probe to this follower in its term, echoed in
    /// the answer, so the leader can tell an answer to a recent probe from a stale duplicate.
    public var probe: UInt64

    /// Creates the payload.
    public init(prevLogIndex: LogIndex, prevLogTerm: Term, entries: [LogEntry], leaderCommit: LogIndex, probe: UInt64 = 0) {
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.leaderCommit = leaderCommit
        self.probe = probe
    }
}

/// Payload of ``Message/Kind/appendEntriesResponse(_:)``.
public struct AppendEntriesResponse: Sendable, Hashable {
    /// On success, the index of the last entry now known to match the leader's log.
    /// On rejection, the `prevLogIndex` that was rejected.
    public var index: LogIndex
    /// Whether the consistency check failed.
    public var reject: Bool
    /// On rejection: the largest index at or below `min(index, follower's last index)` whose term
    /// is at most the rejected `prevLogTerm`. The leader resumes from there, skipping a whole
    /// term of conflicting entries at a time (§5.3, "fast backtracking").
    public var rejectHint: LogIndex
    /// On rejection: the follower's term at `rejectHint`.
    public var rejectHintTerm: Term
    /// The ``AppendEntries/probe`` number of the append answered (zero if it was not a probe).
    public var probe: UInt64

    /// Creates the payload.
    public init(index: LogIndex, reject: Bool = false, rejectHint: LogIndex = .zero, rejectHintTerm: Term = .zero, probe: UInt64 = 0) {
        self.index = index
        self.reject = reject
        self.rejectHint = rejectHint
        self.rejectHintTerm = rejectHintTerm
        self.probe = probe
    }
}

/// Payload of ``Message/Kind/heartbeat(_:)``.
public struct Heartbeat: Sendable, Hashable {
    /// `min(leader's commit, follower's known match index)`: never more than the follower is
    /// known to hold. The follower further limits it to what it verified in this term.
    public var commit: LogIndex
    /// Nonzero when the heartbeat confirms read-index requests: the leader's heartbeat round,
    /// increasing within its term, echoed in the response. An answer to round `r` confirms the
    /// leadership for every read registered before round `r` was sent, and only those.
    public var round: UInt64

    /// Creates the payload.
    public init(commit: LogIndex, round: UInt64 = 0) {
        self.commit = commit
        self.round = round
    }
}

/// Payload of ``Message/Kind/heartbeatResponse(_:)``.
public struct HeartbeatResponse: Sendable, Hashable {
    /// The ``Heartbeat/round`` of the heartbeat answered.
    public var round: UInt64

    /// Creates the payload.
    public init(round: UInt64 = 0) { self.round = round }
}

/// Payload of ``Message/Kind/installSnapshot(_:)``: which snapshot, and its bytes or where they are.
///
/// The core reads only ``metadata``; it passes ``data`` on untouched, from the leader's storage
/// to the message and from the message to a follower's ``Ready/snapshot``.
public struct InstallSnapshot: Sendable, Hashable {
    /// The entries the snapshot replaces, and the membership at its index.
    public var metadata: SnapshotMetadata
    /// The bytes, or where they are.
    public var data: SnapshotData

    /// Creates the payload.
    public init(metadata: SnapshotMetadata, data: SnapshotData) {
        self.metadata = metadata
        self.data = data
    }

    /// Creates the payload of a snapshot held in memory (``SnapshotData/bytes(_:)``).
    public init(snapshot: Snapshot) { self.init(metadata: snapshot.metadata, data: .bytes(snapshot.data)) }

    /// The snapshot with its bytes, when they travel in memory; throws
    /// ``RaftError/Code/invalidConfiguration`` when a node runtime holds them instead (only that
    /// runtime can read them).
    public func inMemorySnapshot() throws(RaftError) -> Snapshot {
        guard case .bytes(let bytes) = data else {
            throw RaftError(
                .invalidConfiguration,
                "snapshot \(metadata.index) is held by a node runtime (\(data)), not in memory: only that runtime can install it")
        }
        return Snapshot(metadata: metadata, data: bytes)
    }
}

/// Where the bytes of a snapshot that passes through the core are. The core never reads them.
///
/// Shells that move snapshots whole (simulations, `RaftTestKit`) use ``bytes(_:)`` everywhere. A
/// ``RaftNode`` never holds a snapshot whole: its leader's core sends ``inSenderStorage``
/// (``RaftConfiguration/snapshotSending``) and the node streams the bytes from its storage in
/// ``SnapshotChunk``s; a follower's node writes the chunks into a file and steps
/// ``received(id:)`` into its core, and installs that file when the ``Ready`` says to.
public enum SnapshotData: Sendable, Hashable {
    /// The bytes themselves, in memory.
    case bytes([UInt8])
    /// Not read: the sender's storage holds them as its latest snapshot (the one
    /// ``InstallSnapshot/metadata`` names). Only a leader's core produces this, for its shell to
    /// stream; it never crosses the network as it is, and a core refuses it in a message.
    case inSenderStorage
    /// Received by a node runtime into a temporary snapshot file, which `id` names among the
    /// runtime's own; only that runtime steps it into its core, and installs the file when the
    /// ``Ready`` carrying it is persisted.
    case received(id: UInt64)
}

/// Payload of ``Message/Kind/snapshotChunk(_:)``: `data` is the snapshot's bytes from `offset` on.
///
/// A sender reads the snapshot as a stream and does not know its size in advance: the chunk
/// that ends it says so (``last``), and is sent only once the sender's copy passed its own
/// checksum. Each chunk carries the running checksum of everything up to its end, so a receiver
/// verifies the snapshot chunk by chunk as it writes it, computing its checksum once.
public struct SnapshotChunk: Sendable, Hashable {
    /// Identifies one transfer; a sender that starts over uses a new id.
    public var transfer: UInt64
    /// The snapshot's metadata (the same on every chunk of a transfer).
    public var metadata: SnapshotMetadata
    /// Where `data` starts in the snapshot.
    public var offset: UInt64
    /// The bytes.
    public var data: [UInt8]
    /// CRC-32C of the snapshot's bytes from the start through this chunk's last byte.
    public var checksum: UInt32
    /// Whether this chunk ends the snapshot.
    public var last: Bool

    /// Creates the payload.
    public init(transfer: UInt64, metadata: SnapshotMetadata, offset: UInt64, data: [UInt8], checksum: UInt32, last: Bool) {
        self.transfer = transfer
        self.metadata = metadata
        self.offset = offset
        self.data = data
        self.checksum = checksum
        self.last = last
    }
}

/// Payload of ``Message/Kind/snapshotChunkAck(_:)``.
public struct SnapshotChunkAck: Sendable, Hashable {
    /// The transfer answered.
    public var transfer: UInt64
    /// The offset the receiver expects next; the total size once it has everything (written
    /// and verified). Lower than what the sender sent when chunks were lost, zero when the
    /// receiver lost the transfer (it restarted): the sender resumes from here.
    public var next: UInt64
    /// The receiver refuses the transfer (a checksum did not match, it is too large, or it is
    /// malformed): the sender starts over.
    public var rejected: Bool
    /// The receiver holds every byte of the snapshot (`next` is its size) and is making it
    /// durable (writing and syncing the last piece, which can take long for a large one): the
    /// sender waits for the final answer, and does not count the wait as a stall.
    public var sealing: Bool

    /// Creates the payload.
    public init(transfer: UInt64, next: UInt64, rejected: Bool = false, sealing: Bool = false) {
        self.transfer = transfer
        self.next = next
        self.rejected = rejected
        self.sealing = sealing
    }
}

/// Payload of ``Message/Kind/forwardProposal(_:)``.
public struct ForwardProposal: Sendable, Hashable {
    /// The commands, in order.
    public var commands: [[UInt8]]

    /// Creates the payload.
    public init(commands: [[UInt8]]) { self.commands = commands }
}

/// Payload of ``Message/Kind/readIndex(_:)``.
public struct ReadIndexRequest: Sendable, Hashable {
    /// The follower's context for the request, echoed in the answer (non-empty).
    public var context: [UInt8]
    /// How the leader may confirm its leadership for this request.
    public var confirmation: ReadConfirmation

    /// Creates the payload.
    public init(context: [UInt8], confirmation: ReadConfirmation = .quorum) {
        self.context = context
        self.confirmation = confirmation
    }
}

/// Payload of ``Message/Kind/readIndexResponse(_:)``.
public struct ReadIndexResponse: Sendable, Hashable {
    /// The context of the request answered.
    public var context: [UInt8]
    /// The leader's commit index when the request reached it (at least every index committed
    /// before the follower's client asked): the follower serves the read once it has applied it.
    public var index: LogIndex

    /// Creates the payload.
    public init(context: [UInt8], index: LogIndex) {
        self.context = context
        self.index = index
    }
}

/// How a leader confirms that it still leads before it answers a read (thesis §6.4).
public enum ReadConfirmation: Sendable, Hashable, CustomStringConvertible {
    /// A round of heartbeats answered by a quorum after the request arrived: safe whatever the
    /// clocks do.
    case quorum
    /// The leader's lease (thesis §6.4.1), when ``RaftConfiguration/readLease`` enables it and
    /// the lease holds: no round at all. Falls back to ``quorum`` when the lease has run out.
    /// Safe only while the clocks keep to the lease's drift bound.
    case lease

    public var description: String {
        switch self {
        case .quorum: "quorum"
        case .lease: "lease"
        }
    }
}

/// The outcome of a read-index request: once the state machine has applied `index`, a read
/// of it reflects every write committed before the request (thesis §6.4).
public struct ReadState: Sendable, Hashable {
    /// The commit index at the time the request was confirmed by a quorum.
    public var index: LogIndex
    /// The caller's context identifying the request.
    public var context: [UInt8]

    /// Creates a read state.
    public init(index: LogIndex, context: [UInt8]) {
        self.index = index
        self.context = context
    }
}
