/// A replicated state machine kept in memory: rebuilt after a restart from the latest snapshot
/// plus the log.
///
/// Contract:
/// - **Determinism.** ``apply(_:)`` must produce the same state and results on every replica for
///   the same entries: no clocks, no randomness, no I/O whose outcome can differ.
/// - **Order.** The runtime calls ``apply(_:)`` with committed entries in index order, with no
///   gap and never twice (see ``AppliedIndexGuard``); no-op entries are included (skip them).
/// - **Exclusion.** The runtime never calls two methods at once.
/// - **Snapshots.** ``snapshot()`` captures the state after the last applied entry;
///   ``restore(from:metadata:)`` replaces the whole state with one.
public protocol StateMachine: AnyObject, SendableMetatype {
    /// What applying one command returns to its proposer.
    associatedtype Result: Sendable

    /// Applies committed entries in order; returns one result per entry (no-ops included).
    func apply(_ entries: ArraySlice<LogEntry>) throws -> [Result]
    /// The serialized state after the last applied entry.
    func snapshot() throws -> [UInt8]
    /// Replaces the state with a snapshot's.
    func restore(from data: [UInt8], metadata: SnapshotMetadata) throws
}
