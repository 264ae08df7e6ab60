import Raft

/// A rule your state machine broke while a ``SimCluster`` ran it: which rule, on which node, at
/// which index, what happened, the likely cause and what to change.
///
/// The findings of one seed are in ``SimCheckFailure/findings``; each is also one of the
/// ``SafetyChecker/violations`` of the cluster that found it.
public struct SimStateMachineFinding: Sendable, Hashable, CustomStringConvertible {
    /// The rule.
    public enum Rule: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// State machine safety (Raft paper §5.4.3), on your state: two nodes that applied the
        /// log up to an index hold different states there (their digests differ).
        case stateMachineSafety
        /// Snapshot isolation: a snapshot prepared at an index and saved while the node went on
        /// applying entries holds the state the node held at that index. Checked as each
        /// snapshot is saved: its bytes, or with ``SimMachineUnderTest/describeState`` the
        /// state of a fresh instance recovered from it, against the state taken when it was
        /// prepared.
        case snapshotIsolation
        /// Two nodes (or one node, fed an entry again after a restart) returned different
        /// results for the command at one index.
        case sameResults
        /// ``Raft/StateMachine/apply(_:)`` returned another number of results than one per
        /// command entry.
        case oneResultPerCommand
        /// ``Raft/StateMachine/apply(_:)`` threw on committed commands (a real node stops).
        case applyThrows
        /// Saving a snapshot (``Raft/StateMachine/sync()``,
        /// ``Raft/StateMachine/prepareSnapshot()``, ``Raft/StateMachine/saveSnapshot(_:to:)``)
        /// or describing the state threw.
        case snapshotSave
        /// ``Raft/StateMachine/recoverSnapshot(from:metadata:)`` threw on a snapshot the state
        /// machine saved.
        case snapshotRecover
        /// The factory threw, or made an instance that does not start empty.
        case freshInstance
        /// The applied index the state machine reports (``Raft/StateMachine/reportedAppliedIndex``,
        /// an ``Raft/OnDiskStateMachine``'s ``Raft/OnDiskStateMachine/appliedIndex``) is not the
        /// last entry applied, or the snapshot's index after a recovery; a ``Raft/RaftNode``
        /// stops with ``Raft/RaftError/Code/stateMachine``.
        case reportedAppliedIndex

        public var description: String { rawValue }
    }

    /// What most likely broke the rule, judged from how the nodes that disagree got their state.
    public enum Cause: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// The nodes disagree without any snapshot involved: both applied every entry from the
        /// empty state, so ``Raft/StateMachine/apply(_:)`` is not deterministic.
        case nonDeterministicApply
        /// A state recovered from a snapshot is the state at a *later* index: the snapshot
        /// context shares the live state, so entries applied after
        /// ``Raft/StateMachine/prepareSnapshot()`` leaked into the snapshot.
        case snapshotHoldsLaterState
        /// Two snapshots of what looks like one state differ in their bytes: fresh instances
        /// recovered from them return the same results for further commands. Most likely
        /// ``Raft/StateMachine/saveSnapshot(_:to:)`` writes a hash table (a `Dictionary`, a
        /// `Set`) in its iteration order, which differs between instances, while states are
        /// compared by their snapshot bytes. (The probe commands may also miss a real
        /// difference: the finding says what they showed.)
        case snapshotBytesNotDeterministic
        /// The state after recovering a snapshot is the state before it:
        /// ``Raft/StateMachine/recoverSnapshot(from:metadata:)`` ignored the snapshot.
        case recoverIgnoresSnapshot
        /// The nodes disagree after one of them recovered a snapshot, and the recovered state is
        /// no state the others held: the snapshot leaves out state that apply uses, or the
        /// recovery does not restore all of it.
        case snapshotLosesState
        /// The state machine threw or broke the apply contract; the rule says which.
        case contract

        public var description: String { rawValue }
    }

    /// The rule broken.
    public var rule: Rule
    /// The likely cause.
    public var cause: Cause
    /// The node that broke it (the second of two that disagree).
    public var node: NodeID
    /// The log index, when there is one.
    public var index: LogIndex?
    /// What happened.
    public var problem: String
    /// What to change.
    public var fix: String

    /// Creates a finding.
    public init(_ rule: Rule, cause: Cause, node: NodeID, at index: LogIndex?, _ problem: String, fix: String) {
        self.rule = rule
        self.cause = cause
        self.node = node
        self.index = index
        self.problem = problem
        self.fix = fix
    }

    /// What a finding's ``SafetyChecker`` violation starts with.
    static var violationPrefix: String { "state machine: " }

    /// `[rule, cause] node N at index I: problem. Fix: fix`
    public var description: String {
        let place = index.map { " at index \($0)" } ?? ""
        return "[\(rule), \(cause)] node \(node)\(place): \(problem). Fix: \(fix)"
    }
}
