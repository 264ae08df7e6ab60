/// Enforces the applied-index rules between the log and a state machine, so that the failures
/// "last applied not moving forward" and "recover snapshot moving applied index backwards"
/// become impossible or harmless instead of fatal.
///
/// The rules, for in-memory and on-disk state machines alike:
/// - committed entries at or below the state machine's applied index are never passed to it
///   again (after a restart they are skipped);
/// - entries are passed with no gap and no term going backwards;
/// - a snapshot is loaded only if it moves the state machine forward; one at exactly the
///   applied index is adopted (its metadata recorded) without reloading data; an older one is
///   ignored;
/// - a state machine that reports its applied index going backwards, or ahead of the log, is
///   refused with a ``RaftError`` naming both indexes and what to do, never a crash.
///
/// Error codes: a state machine that breaks its applied-index contract (ahead of the log when
/// it opens, going backwards, ahead of what it was given) is ``RaftError/Code/stateMachine``,
/// wherever it is found, at startup or while running. Committed entries that do not continue
/// from the applied index (a gap, a term going backwards) are ``RaftError/Code/storage``: the
/// log is at fault. Each message names the step (``verify(reported:after:)`` takes it); the
/// runtime adds the node's id.
///
/// The guard is a value the runtime keeps beside the state machine; it performs no I/O.
public struct AppliedIndexGuard: Sendable, Hashable {
    /// What to do with a snapshot offered to the state machine.
    public enum SnapshotDecision: Sendable, Hashable {
        /// The snapshot is ahead of the state machine: restore from its data.
        case load
        /// The state machine already holds exactly this index: record the snapshot's metadata
        /// and keep the state machine as it is.
        case adoptMetadataOnly
        /// The snapshot is behind the state machine: ignore it.
        case ignore
    }

    /// The highest index the state machine holds.
    public private(set) var applied: LogIndex
    /// The term of the entry at `applied` (zero when unknown, e.g. after a restart).
    public private(set) var appliedTerm: Term

    /// Starts from what the state machine reports holding (zero for an empty in-memory one).
    public init(applied: LogIndex = .zero, term: Term = .zero) {
        self.applied = applied
        appliedTerm = term
    }

    /// Checks the state machine's own applied index (from ``StateMachine/openDurableState()``
    /// on an on-disk state machine) against the log: it may not be past `lastLogIndex`. (One
    /// behind the log's compaction point is fine: ``decide(snapshotAt:)`` then says to load the
    /// snapshot.)
    public static func opening(stateMachineApplied: LogIndex, lastLogIndex: LogIndex) throws(RaftError) -> AppliedIndexGuard {
        if stateMachineApplied > lastLogIndex {
            throw RaftError(
                .stateMachine,
                "the state machine reports applied index \(stateMachineApplied) on opening, but the log ends at \(lastLogIndex): the state machine is ahead of the log; restore the log, or rebuild the state machine from a snapshot")
        }
        return AppliedIndexGuard(applied: stateMachineApplied)
    }

    /// Filters a batch of committed entries: drops those the state machine already holds,
    /// refuses a gap or a term going backwards. Returns the entries to apply, in order.
    public mutating func admit(_ entries: [LogEntry]) throws(RaftError) -> ArraySlice<LogEntry> {
        try admit(entries[...])
    }

    /// Filters a slice of committed entries; see ``admit(_:)-([LogEntry])``.
    public mutating func admit(_ entries: ArraySlice<LogEntry>) throws(RaftError) -> ArraySlice<LogEntry> {
        var start = entries.startIndex
        while start < entries.endIndex && entries[start].index <= applied { start += 1 }
        let fresh = entries[start...]
        var expected = applied + 1
        var term = appliedTerm
        for e in fresh {
            if e.index != expected {
                throw RaftError(
                    .storage,
                    "committed entry \(e.index) would be applied after \(expected - 1): a gap of \(expected.distance(to: e.index)) entries; the log and the state machine disagree")
            }
            if e.term < term {
                throw RaftError(
                    .storage,
                    "committed entry \(e.index) has term \(e.term), below term \(term) of the entry before it: the log is damaged")
            }
            term = e.term
            expected = expected + 1
        }
        return fresh
    }

    /// Records that the entries returned by ``admit(_:)-([LogEntry])`` were applied, up to `last`.
    public mutating func applied(through last: LogEntry) {
        if last.index > applied {
            applied = last.index
            appliedTerm = last.term
        }
    }

    /// Decides what to do with a snapshot at `index`.
    public func decide(snapshotAt index: LogIndex) -> SnapshotDecision {
        if index > applied { return .load }
        if index == applied { return .adoptMetadataOnly }
        return .ignore
    }

    /// Records a snapshot that was loaded or adopted.
    public mutating func snapshotInstalled(_ meta: SnapshotMetadata) {
        if meta.index >= applied {
            applied = meta.index
            appliedTerm = meta.term
        }
    }

    /// Checks what the state machine reports after an operation (for on-disk state machines
    /// that track their own index). Going backwards, or past what it was given, is refused with
    /// ``RaftError/Code/stateMachine``; the message names `operation` ("applying entries 5...9").
    public func verify(reported: LogIndex, after operation: String) throws(RaftError) {
        if reported < applied {
            throw RaftError(
                .stateMachine,
                "the state machine reports applied index \(reported) after \(operation), below \(applied) which it already held: its applied index went backwards; it must persist its applied index atomically with its data")
        }
        if reported > applied {
            throw RaftError(
                .stateMachine,
                "the state machine reports applied index \(reported) after \(operation), ahead of \(applied), the last index it was given: it must not invent entries")
        }
    }
}
