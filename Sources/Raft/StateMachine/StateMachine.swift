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

    /// For state machines that are themselves durable (``OnDiskStateMachine``): opens the
    /// state and returns the applied index persisted atomically with it. `nil` (the default)
    /// means the state lives in memory and is rebuilt from the latest snapshot and the log.
    func open() throws -> LogIndex?
    /// Makes the applied state durable; called before a snapshot is recorded. The default does
    /// nothing.
    func sync() throws
    /// The index the state machine reports holding, checked by the runtime after every batch;
    /// `nil` (the default) skips the check.
    var reportedAppliedIndex: LogIndex? { get }
}

extension StateMachine {
    public func open() throws -> LogIndex? { nil }
    public func sync() throws {}
    public var reportedAppliedIndex: LogIndex? { nil }
}

/// A state machine whose state is itself durable (a database, files): it keeps its own applied
/// index, persisted atomically with its data, so a restart does not replay what it holds.
///
/// Contract, on top of ``StateMachine``'s:
/// - ``StateMachine/open()`` returns the applied index persisted with the data. The runtime
///   never passes an entry at or below it again, loads a snapshot only if it moves the state
///   forward, and adopts a snapshot at exactly that index without reloading data.
/// - After ``StateMachine/apply(_:)`` the reported applied index equals the last entry given;
///   after ``StateMachine/sync()`` everything applied is durable.
/// - An applied index that goes backwards, or runs ahead of the log, stops the node with a
///   ``RaftError`` naming both indexes (``RaftError/Code/stateMachine`` or
///   ``RaftError/Code/storage``); the process is never crashed.
public protocol OnDiskStateMachine: StateMachine {
    /// Opens the state; returns the durable applied index.
    func openState() throws -> LogIndex
    /// Makes everything applied durable.
    func syncState() throws
    /// The applied index the state holds now (durable or not).
    var appliedIndex: LogIndex { get }
}

extension OnDiskStateMachine {
    public func open() throws -> LogIndex? { try openState() }
    public func sync() throws { try syncState() }
    public var reportedAppliedIndex: LogIndex? { appliedIndex }
}
