/// One entry of the replicated log.
public struct LogEntry: Sendable, Hashable {
    /// What an entry carries.
    public enum Kind: UInt8, Sendable, Hashable {
        /// A command proposed by a client, passed to the state machine when committed.
        case command = 0
        /// The empty entry a new leader appends to commit entries of earlier terms (§5.4.2, §8).
        /// State machines skip it; it still advances the applied index.
        case noop = 1
        /// A membership change: `data` is the new ``ConfState`` (``ConfState/encoded()``). It
        /// takes effect on every node as soon as the node appends it (thesis §4.1), and is
        /// undone if the entry is truncated. State machines skip it like a no-op; it still
        /// advances the applied index.
        case membership = 2
    }

    /// The term of the leader that created the entry.
    public var term: Term
    /// The entry's position in the log.
    public var index: LogIndex
    /// Command or no-op.
    public var kind: Kind
    /// The command's bytes, opaque to Raft.
    public var data: [UInt8]

    /// Creates an entry.
    public init(term: Term, index: LogIndex, kind: Kind = .command, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.kind = kind
        self.data = data
    }

    /// The size the entry counts for in message size limits: payload plus a fixed header.
    @inlinable public var byteSize: Int { data.count + LogEntry.headerSize }

    /// The fixed overhead charged per entry in size limits (term, index, kind, length).
    public static let headerSize = 24
}

/// The state Raft must make durable before it answers any message that depends on it.
///
/// Invariant: `term` and `vote` are written to stable storage before a vote is granted or a
/// vote is requested (Raft paper §5.1, figure 2 "Persistent state on all servers").
public struct HardState: Sendable, Hashable {
    /// The latest term this node has seen.
    public var term: Term
    /// The candidate this node voted for in `term`, or `.none`.
    public var vote: NodeID
    /// The highest index known to be committed. Persisting it is an optimisation (restart needs
    /// not re-learn it); it is never required for safety.
    public var commit: LogIndex

    /// Creates a hard state.
    public init(term: Term = .zero, vote: NodeID = .none, commit: LogIndex = .zero) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }

    /// Whether this is the state of a node that never saw a term.
    public var isEmpty: Bool { self == HardState() }
}

/// What identifies a snapshot: the last entry it covers and the membership at that point.
public struct SnapshotMetadata: Sendable, Hashable {
    /// Index of the last entry included in the snapshot.
    public var index: LogIndex
    /// Term of that entry.
    public var term: Term
    /// The membership at `index`.
    public var confState: ConfState

    /// Creates snapshot metadata.
    public init(index: LogIndex, term: Term, confState: ConfState) {
        self.index = index
        self.term = term
        self.confState = confState
    }
}

/// A point-in-time image of the state machine, replacing the log up to `metadata.index`.
public struct Snapshot: Sendable, Hashable {
    /// Which entries the snapshot replaces.
    public var metadata: SnapshotMetadata
    /// The state machine's serialized state. Opaque to Raft.
    public var data: [UInt8]

    /// Creates a snapshot.
    public init(metadata: SnapshotMetadata, data: [UInt8] = []) {
        self.metadata = metadata
        self.data = data
    }

    /// The empty snapshot of a brand-new log.
    public static let empty = Snapshot(metadata: SnapshotMetadata(index: .zero, term: .zero, confState: ConfState(voters: [])))

    /// Whether this is the empty snapshot.
    public var isEmpty: Bool { metadata.index == .zero }
}
