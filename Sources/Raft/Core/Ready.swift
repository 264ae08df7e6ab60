/// Everything the core asks its shell to do, in one batch. Obtain it with ``RaftCore/ready()``,
/// carry it out in the order below, then hand it back with ``RaftCore/advance(_:)``.
///
/// The order is the contract:
/// 1. ``messages`` may be sent at once, in parallel with steps 2–3 (they never depend on
///    anything this batch makes durable: a leader's appends, pipelined with its own disk write,
///    thesis §10.2.1; a follower's heartbeat answers and read-index requests in a term it has
///    already made durable);
/// 2. persist ``snapshot``, then ``entries``, then ``hardState``, and sync;
/// 3. only then send ``messagesAfterPersist``;
/// 4. apply ``snapshot`` (if any) and then ``committedEntries`` to the state machine, in order;
/// 5. call ``RaftCore/advance(_:)`` with this value.
public struct Ready: Sendable {
    /// The role and leader, when either changed since the previous batch. Nothing to persist.
    public var softState: SoftState?
    /// Term, vote and commit to persist when any changed. Persist BEFORE sending
    /// ``messagesAfterPersist``: a vote or a term must be durable before anyone learns of it.
    public var hardState: HardState?
    /// A snapshot received from the leader. Persist it (replacing the log up to its index)
    /// BEFORE ``entries``, and restore the state machine from it BEFORE ``committedEntries``.
    /// Its bytes are in memory (``SnapshotData/bytes(_:)``), or, in a ``RaftNode``, in a file
    /// the node received (``SnapshotData/received(id:)``). A shell may restore the state
    /// machine off its loop and go on persisting and sending later batches meanwhile, as long
    /// as it applies no committed entry before the restore is done.
    public var snapshot: InstallSnapshot?
    /// Entries to append to stable storage. An entry whose index is already stored replaces it
    /// and everything after it (a conflicting suffix). Persist BEFORE ``messagesAfterPersist``.
    public var entries: [LogEntry]
    /// Committed entries to apply, in index order, with no gaps. Apply AFTER persisting
    /// ``entries`` (they may include entries of this same batch).
    public var committedEntries: [LogEntry]
    /// Messages that may be sent immediately, before this batch is persisted.
    public var messages: [Message]
    /// Messages to send only AFTER ``hardState``, ``snapshot`` and ``entries`` are durable.
    public var messagesAfterPersist: [Message]
    /// Read-index requests confirmed (by a quorum's answers to a heartbeat round, a lease, or,
    /// on a follower, the leader's answer); each may be served once the state machine has
    /// applied ``ReadState/index``.
    public var readStates: [ReadState]

    /// Whether there is nothing to do.
    public var isEmpty: Bool {
        softState == nil && hardState == nil && snapshot == nil && entries.isEmpty && committedEntries.isEmpty
            && messages.isEmpty && messagesAfterPersist.isEmpty && readStates.isEmpty
    }

    /// Whether the batch has anything to write.
    public var needsSync: Bool { hardState != nil || snapshot != nil || !entries.isEmpty }

    /// Whether what the batch writes must be durable before ``messagesAfterPersist`` are sent:
    /// new entries, a snapshot, or a new term or vote. A hard state whose only change is the
    /// commit index may be written without a sync (the commit index is a hint on restart; it is
    /// re-learned from the leader), saving an `fdatasync` on every commit.
    public var mustSync: Bool
}

/// The volatile part of a node's state that its users usually care about.
public struct SoftState: Sendable, Hashable {
    /// The node's role.
    public var role: RaftCore.Role
    /// The leader this node follows (itself when leader), or `.none`.
    public var leader: NodeID

    /// Creates a soft state.
    public init(role: RaftCore.Role, leader: NodeID) {
        self.role = role
        self.leader = leader
    }
}

/// Where the entries of an accepted proposal went.
public struct ProposalReceipt: Sendable, Hashable {
    /// The leader's term when the entries were appended. If the entry at `lastIndex` is later
    /// applied with another term, the proposal was lost to a leader change.
    public var term: Term
    /// Index of the first entry.
    public var firstIndex: LogIndex
    /// Index of the last entry.
    public var lastIndex: LogIndex
}

/// How a leader sends to one follower.
public enum ReplicationState: Sendable, Hashable, CustomStringConvertible {
    /// One append at a time until the leader finds where the logs agree (after an election, a
    /// rejection, or the follower being reported unreachable).
    case probe
    /// Optimistic pipelining of appends, bounded by the in-flight window.
    case replicate
    /// A snapshot is on its way; nothing else is sent until it is acknowledged or fails.
    case snapshot

    public var description: String {
        switch self {
        case .probe: "probe"
        case .replicate: "replicate"
        case .snapshot: "snapshot"
        }
    }
}

/// A snapshot of a node's state for operators and tests.
public struct RaftStatus: Sendable, Hashable {
    /// What a leader knows of one member.
    public struct Member: Sendable, Hashable {
        /// The member.
        public var id: NodeID
        /// Its part in the membership.
        public var role: MemberRole
        /// Highest index known replicated there.
        public var match: LogIndex
        /// Next index to send.
        public var next: LogIndex
        /// How the leader sends to it.
        public var state: ReplicationState
        /// Messages in flight.
        public var inflight: Int
    }

    /// This node.
    public var id: NodeID
    /// Current term.
    public var term: Term
    /// Vote cast in `term`.
    public var vote: NodeID
    /// Current role.
    public var role: RaftCore.Role
    /// Known leader.
    public var leader: NodeID
    /// Commit index.
    public var commit: LogIndex
    /// Applied index.
    public var applied: LogIndex
    /// First index held (snapshot index + 1).
    public var firstIndex: LogIndex
    /// Last index held.
    public var lastIndex: LogIndex
    /// On a leader, every member's progress in id order; empty otherwise.
    public var members: [Member]
    /// The membership in force on this node (the latest in its log), with addresses.
    public var membership: ConfState
    /// The index of the entry that set ``membership``: the change is committed once ``commit``
    /// reaches it.
    public var membershipIndex: LogIndex
    /// On a leader handing leadership over, the target; ``NodeID/none`` otherwise.
    public var leadershipTransferTarget: NodeID
}
