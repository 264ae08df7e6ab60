import Raft

/// How ``StateMachineChecks`` runs: which checks, how many commands, which seed.
public struct StateMachineCheckOptions: Sendable, Hashable {
    /// The seed of every random choice (commands, batch sizes, snapshot points, which follower
    /// lags): the same seed replays the same run. The report prints it.
    public var seed: UInt64 = 1
    /// Commands fed to the state machine by each single-instance check (determinism, snapshot
    /// round trip and isolation, on-disk applied index).
    public var commands: Int = 200
    /// Commands proposed through the cluster of the ``StateMachineCheck/runtime`` check, spread
    /// over the rounds between its restarts and crashes (at least 24 per round, three snapshot
    /// intervals, so every round compacts the log; a few more are proposed to let restarted
    /// followers catch up).
    public var runtimeCommands: Int = 200
    /// The checks to run; the others are reported as skipped.
    public var checks: Set<StateMachineCheck> = Set(StateMachineCheck.allCases)
    /// Whether the checks after a failed one still run. Off by default: a state machine that
    /// broke one rule usually breaks the later checks for the same reason, more slowly.
    public var continueAfterFailure = false
    /// Where the checks make their temporary directories (each run makes one under it and
    /// removes it at the end); `nil` uses `TMPDIR`, or `/tmp`.
    public var temporaryDirectory: String?
    /// Keeps the run's directory instead of removing it (its path is in the report's notes),
    /// to look at what an on-disk state machine wrote.
    public var keepFiles = false

    /// The default options: every check, 200 commands each, seed 1.
    public init() {}
}

/// What the factory of a state machine under check is given: the directory the instance keeps
/// its state in, and whether an earlier instance used it.
///
/// An in-memory state machine ignores it. An on-disk one opens its state there: the checks
/// reopen the same directory to see what a restart (after a sync) or a crash (an instance
/// dropped without a sync) left behind, and give every replica of the runtime check a
/// directory of its own.
public struct StateMachineEnvironment: Sendable {
    /// An existing directory for this instance's files; nothing else writes there.
    public let directory: String
    /// `true` when the directory is empty and new; `false` when an earlier instance, now gone,
    /// used it (a restart or a crash) and the new one must open what it left.
    public let isFresh: Bool
    /// The replica this instance runs in, in the ``StateMachineCheck/runtime`` check; `nil` in
    /// the single-instance checks.
    public let node: NodeID?

    /// Creates an environment (the checks make them; tests of a factory may too).
    public init(directory: String, isFresh: Bool, node: NodeID? = nil) {
        self.directory = directory
        self.isFresh = isFresh
        self.node = node
    }
}
