/// A replicated state machine kept in memory: rebuilt after a restart from the latest snapshot
/// plus the log.
///
/// Contract:
/// - **Determinism.** ``apply(_:)`` must produce the same state and results on every replica for
///   the same entries: no clocks, no randomness, no I/O whose outcome can differ.
/// - **Order.** The runtime calls ``apply(_:)`` with committed entries in index order, with no
///   gap and never twice (see ``AppliedIndexGuard``).
/// - **No-ops and membership entries.** A new leader's first entry is a no-op
///   (``LogEntry/Kind/noop``), and a membership change is an entry of kind
///   ``LogEntry/Kind/membership`` (the runtime acts on it; the state machine does not). Both are
///   passed to ``apply(_:)`` like any entry, so the state machine learns every index (an on-disk
///   one records the exact index it holds), but they have no result: ``apply(_:)`` returns one
///   result per *command* entry (``LogEntry/Kind/command``), and none for any other kind: test
///   `kind == .command`, not `kind != .noop`. Why not skip them altogether: then an on-disk
///   state machine's durable index would lag the log by the no-ops after its last command, and
///   the runtime could no longer check that the index it reports is exactly the last entry it
///   was given, nor adopt a snapshot at exactly that index without reloading it.
/// - **Ownership.** ``RaftNode/init(configuration:storage:stateMachine:transport:clock:logger:)``
///   takes the state machine as a `sending` parameter: from then on the node is its only user,
///   and the compiler refuses code that keeps the object and touches it afterwards (a read
///   racing ``apply(_:)``). To look at the state from elsewhere, have the state machine publish
///   what you need into a `Sendable` value of your own (a `Mutex`-protected copy, a database
///   other connections read).
/// - **Concurrency.** Every instance method runs on the node's run loop, one at a time, with
///   one exception: ``recoverSnapshot(from:metadata:)`` of a snapshot received from the leader
///   runs on the node's snapshot thread while the node calls no other method (it holds
///   committed entries until the restore returns, and applies them afterwards), so it may take
///   as long as the data needs: the node keeps answering its leader meanwhile. At startup the
///   restore runs on the loop, before the node takes part in the cluster.
///   ``saveSnapshot(_:to:)`` also runs on the snapshot thread (never together with a restore),
///   *beside* ``apply(_:)``. It is a `static` requirement, so it cannot reach the live state
///   machine: all it gets is the `Sendable` context ``prepareSnapshot()`` returned. The
///   compiler checks both halves: no instance to race with, and a context that may cross
///   threads. One context at a time: the node prepares no other snapshot, and restores none,
///   until ``saveSnapshot(_:to:)`` of the last context returned, so a context may hold an
///   exclusive resource (the one read transaction a database allows). RaftTestKit's
///   simulation (`SimCluster.check`) keeps the same order.
/// - **Snapshots in two steps.** ``prepareSnapshot()`` runs between two applies and captures a
///   point-in-time view cheaply (a copy-on-write copy of a Swift collection, a database read
///   transaction); ``saveSnapshot(_:to:)`` then streams that view out while new entries are
///   applied. ``recoverSnapshot(from:metadata:)`` replaces the whole state with a saved one.
public protocol StateMachine: AnyObject, SendableMetatype {
    /// What applying one command returns to its proposer.
    associatedtype Result: Sendable
    /// A point-in-time view of the state, taken by ``prepareSnapshot()`` on the run loop and
    /// handed to ``saveSnapshot(_:to:)`` on the snapshot thread, while ``apply(_:)`` goes on
    /// changing the live state. It must be `Sendable`: a value (a copy-on-write collection), or
    /// a handle that is safe to use from another thread (a database read transaction or
    /// snapshot that later writes do not change). It must not share mutable state with the
    /// state machine.
    associatedtype SnapshotContext: Sendable

    /// Applies committed entries in order; returns one result per command entry, in order
    /// (no-op and membership entries change nothing here and have no result).
    func apply(_ entries: ArraySlice<LogEntry>) throws -> [Result]
    /// Captures the state after the last applied entry, cheaply; called under exclusion with
    /// ``apply(_:)``.
    func prepareSnapshot() throws -> SnapshotContext
    /// Writes the state captured in `context` to `output`.
    ///
    /// Runs on the node's snapshot thread, beside ``apply(_:)``. It is `static` so that it
    /// cannot touch the live state machine, only the point-in-time `context`; everything it
    /// needs (the data, a read transaction, a path) goes into the context.
    static func saveSnapshot(_ context: SnapshotContext, to output: SnapshotOutput) throws
    /// Replaces the state with a snapshot's, read from `input` as a stream (the data is never
    /// in memory whole unless you read it so). For a snapshot received from the leader this
    /// runs on the snapshot thread; see the concurrency rule above.
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws

    /// For state machines that are themselves durable (``OnDiskStateMachine``): opens the
    /// state and returns the applied index persisted atomically with it. `nil` (the default)
    /// means the state lives in memory and is rebuilt from the latest snapshot and the log.
    ///
    /// The runtime calls it once, when the node starts, before anything else. (It is not named
    /// `open`, so a conforming type can still call POSIX `open` unqualified.)
    func openDurableState() throws -> LogIndex?
    /// Makes the applied state durable. The runtime calls it before a snapshot is prepared, so
    /// a snapshot is never recorded ahead of the state machine's own durable state, and when
    /// the node stops the orderly way (``RaftNode/stop()``, graceful shutdown, a cancelled
    /// ``RaftNode/run()``), so it restarts where it stopped. A failure stops the node with
    /// ``RaftError/Code/stateMachine`` (on stop, ``RaftNode/run()`` throws it). The default
    /// does nothing.
    func sync() throws
    /// The index the state machine reports holding, checked by the runtime after every batch;
    /// `nil` (the default) skips the check.
    var reportedAppliedIndex: LogIndex? { get }
}

extension StateMachine {
    public func openDurableState() throws -> LogIndex? { nil }
    public func sync() throws {}
    public var reportedAppliedIndex: LogIndex? { nil }
}

/// A state machine whose state is itself durable (a database, files): it keeps its own applied
/// index, persisted atomically with its data, so a restart does not replay what it holds.
///
/// Contract, on top of ``StateMachine``'s:
/// - ``openState()`` (which the runtime calls through ``StateMachine/openDurableState()``)
///   returns the applied index persisted with the data. The runtime never passes an entry at or
///   below it again, loads a snapshot only if it moves the state forward, and adopts a snapshot
///   at exactly that index without reloading data.
/// - After ``StateMachine/apply(_:)`` the reported applied index equals the last entry given;
///   after ``StateMachine/recoverSnapshot(from:metadata:)`` it equals the snapshot's index;
///   after ``StateMachine/sync()`` everything applied is durable.
/// - An applied index that breaks these rules (ahead of the log when opened, going backwards,
///   ahead of the last entry given) stops the node with a ``RaftError`` of code
///   ``RaftError/Code/stateMachine``, whether it is found at startup or while running; the
///   message names the node, the step ("opening the state machine", "restoring snapshot 6 at
///   startup", "applying entries 7...9", "installing snapshot 12 from the leader") and both
///   indexes. The process is never crashed. (Committed entries that do not continue from the
///   applied index are the log's fault: ``RaftError/Code/storage``.)
///
/// What the runtime cannot detect: a durable index that went backwards *between two runs*. A
/// going-backwards index stops the node only when it is seen while the node runs. At startup
/// the runtime knows only what ``openState()`` returns, and an index lower than the one applied
/// in the previous run looks exactly like lazy syncing, which is allowed: the state machine
/// applied more than it made durable before it stopped or crashed. So while that index is at or
/// above the log's snapshot, the runtime feeds the state machine every committed entry after
/// it again, entries it may in fact already hold. Only an index below the snapshot is
/// repaired: the snapshot is loaded, and replaces the whole state. A lost write, a restored
/// backup, a sync that returned before the data was durable, or an index written apart from
/// its data all end up in this case. Make being fed again harmless:
/// - Persist the applied index in the same atomic write as the data it describes (one
///   database transaction, one file replaced by rename): never before the data (the entries
///   in between would be skipped, and lost), never after it (they would be applied twice).
///   Then the data is exactly the state at that index, and applying the entries after it again
///   is correct however far back the durable state went.
/// - A state machine that cannot write them atomically (the index in one file, the data
///   spread over others) must make ``StateMachine/apply(_:)`` idempotent per index: store with
///   each change the index of the entry that made it, and skip an entry at or below it.
///
/// Syncing inside every ``StateMachine/apply(_:)`` is not needed: the log keeps every entry the
/// state machine has not made durable, because the runtime syncs the state machine
/// (``StateMachine/sync()``) before each snapshot it takes and compacts the log only behind
/// that snapshot. It also syncs it when the node stops the orderly way; after a crash, what was
/// not synced is fed again.
public protocol OnDiskStateMachine: StateMachine {
    /// Opens the state; returns the durable applied index.
    func openState() throws -> LogIndex
    /// Makes everything applied durable.
    func syncState() throws
    /// The applied index the state holds now (durable or not).
    var appliedIndex: LogIndex { get }
}

extension OnDiskStateMachine {
    public func openDurableState() throws -> LogIndex? { try openState() }
    public func sync() throws { try syncState() }
    public var reportedAppliedIndex: LogIndex? { appliedIndex }
}
