import Raft

/// One rule of the state machine contract that ``StateMachineChecks`` puts a state machine
/// through, in the order they run.
public enum StateMachineCheck: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Two instances fed the same entries (one fed them one at a time, the other in batches of
    /// varying size, with no-ops between) return the same results and hold the same state after
    /// every batch. Also checks that ``StateMachine/apply(_:)`` returns one result per command
    /// entry.
    case determinism
    /// A snapshot saved at an index and recovered into a fresh instance, and into an instance
    /// that holds an older state, gives the state at that index, and the same results for the
    /// commands after it.
    case snapshotRoundTrip
    /// A snapshot context taken by ``StateMachine/prepareSnapshot()`` saves the state at the
    /// point it was taken, however many entries are applied after it: first saved after those
    /// applies, then saved on another thread while they run.
    case snapshotIsolation
    /// For a state machine with durable state (``StateMachine/openDurableState()`` returns an
    /// index): the reported applied index follows every apply and restore; after a sync,
    /// reopening its directory returns the last applied index and its data; after a simulated
    /// crash (the instance dropped without a sync) it returns an index whose data is exactly the
    /// state at that index. Skipped for in-memory state machines.
    case onDiskAppliedIndex
    /// Three ``RaftNode``s over a ``LocalTransport`` with ``FileLogStorage`` and a
    /// ``ManualClock`` run the state machine under proposals, orderly restarts, crashes at every
    /// crash point around snapshots, crashes between snapshots without a state machine sync and
    /// a follower catching up by snapshot; at the end every node
    /// holds the same state as a fresh instance fed the committed log once, and every
    /// acknowledged command's result is the one that state machine gives at its index.
    case runtime

    public var description: String { rawValue }
}

/// A rule a state machine broke: which check found it, at which index, what happened and what to
/// change. Thrown by ``StateMachineCheckReport/requirePassed()``.
public struct StateMachineCheckFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// The check that failed.
    public var check: StateMachineCheck
    /// The log index at which the rule broke, when there is one.
    public var index: LogIndex?
    /// What happened.
    public var problem: String
    /// What to change in the state machine.
    public var fix: String

    /// Creates a failure.
    public init(_ check: StateMachineCheck, at index: LogIndex? = nil, _ problem: String, fix: String) {
        self.check = check
        self.index = index
        self.problem = problem
        self.fix = fix
    }

    /// `[check] at index N: problem. Fix: fix`
    public var description: String {
        let place = index.map { " at index \($0)" } ?? ""
        return "[\(check)]\(place): \(problem). Fix: \(fix)"
    }
}

/// What a run of ``StateMachineChecks`` found: one outcome per check, in the order they ran.
///
/// Use it from any test framework: assert ``passed`` and print the report, or call
/// ``requirePassed()``, which throws the first failure.
public struct StateMachineCheckReport: Sendable, CustomStringConvertible {
    /// How one check ended.
    public enum Outcome: Sendable, Hashable {
        /// The state machine obeyed the rule.
        case passed
        /// It broke the rule.
        case failed(StateMachineCheckFailure)
        /// The check did not run; the text says why (not applicable, not selected, an earlier
        /// check failed).
        case skipped(String)
    }

    /// One check's outcome, what it did and how long it took.
    public struct Result: Sendable {
        /// The check.
        public var check: StateMachineCheck
        /// How it ended.
        public var outcome: Outcome
        /// What the check did (entries applied, snapshots taken, crashes injected).
        public var notes: [String]
        /// Wall-clock time the check took.
        public var duration: Duration
    }

    /// Every check, in the order they ran (skipped ones included).
    public var results: [Result] = []
    /// The seed the run used: pass it in ``StateMachineCheckOptions/seed`` to replay it.
    public var seed: UInt64

    /// The failures, in the order found.
    public var failures: [StateMachineCheckFailure] {
        results.compactMap { r in
            if case .failed(let f) = r.outcome { return f }
            return nil
        }
    }

    /// Whether no check failed.
    public var passed: Bool { failures.isEmpty }

    /// The outcome of `check`, or `nil` if the run did not include it.
    public func outcome(of check: StateMachineCheck) -> Outcome? { results.first { $0.check == check }?.outcome }

    /// Throws the first failure, if any.
    public func requirePassed() throws(StateMachineCheckFailure) {
        if let first = failures.first { throw first }
    }

    /// One line per check: its outcome, its duration and what it did; failures in full.
    public var description: String {
        var lines = ["state machine checks (seed \(seed)): " + (passed ? "all passed" : "\(failures.count) failed")]
        for r in results {
            let head: String
            switch r.outcome {
            case .passed: head = "passed"
            case .failed(let f): head = "FAILED \(f)"
            case .skipped(let why): head = "skipped: \(why)"
            }
            let notes = r.notes.isEmpty ? "" : " (" + r.notes.joined(separator: "; ") + ")"
            lines.append("  \(r.check) [\(Self.milliseconds(r.duration))]: \(head)\(notes)")
        }
        return lines.joined(separator: "\n")
    }

    /// A duration as milliseconds with one decimal: "12.3 ms".
    static func milliseconds(_ d: Duration) -> String {
        let tenths = d.components.seconds * 10_000 + d.components.attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(tenths % 10) ms"
    }
}
