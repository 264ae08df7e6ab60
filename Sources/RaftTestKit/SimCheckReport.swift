import Raft

/// What ``SimCluster/check(_:seeds:options:)`` found: how many seeds ran, what your state
/// machine did in them, and each failing seed with how to replay it.
///
/// Use it from any test framework: assert ``passed`` and print the report, or call
/// ``requirePassed()``, which throws the first failure (or what was not exercised).
public struct SimCheckReport: Sendable, CustomStringConvertible {
    /// The options the seeds ran with (pass them again to replay a seed).
    public var options: SimCheckOptions
    /// Seeds run, failing ones included.
    public var seedsRun = 0
    /// The failing seeds, in the order run.
    public var failures: [SimCheckFailure] = []
    /// Sum over the seeds of the highest commit index reached.
    public var committed: UInt64 = 0
    /// What your state machine did, summed over the seeds: entries applied, states and results
    /// compared, snapshots saved and recovered.
    public var stats = SimMachineStats()
    /// Seeds in which your state machine saved at least one snapshot.
    public var seedsSavingSnapshots = 0
    /// Seeds in which at least one snapshot of your state machine was recovered.
    public var seedsRecoveringSnapshots = 0

    /// An empty report.
    public init(options: SimCheckOptions) { self.options = options }

    /// Counts one seed run, with what the state machine did in it.
    mutating func add(_ seed: SimMachineStats) {
        seedsRun += 1
        stats.add(seed)
        if seed.snapshotsSaved > 0 { seedsSavingSnapshots += 1 }
        if seed.snapshotsRecovered > 0 { seedsRecoveringSnapshots += 1 }
    }

    /// What the seeds did not exercise although ``SimCheckOptions/requireSnapshots`` asks for
    /// it; empty when they did, or when it is off.
    public var unexercised: [String] {
        guard options.requireSnapshots else { return [] }
        var missing: [String] = []
        let change = "(run more seeds or rounds, or a fault profile with a higher compactRate and crashRate; "
            + "set options.requireSnapshots = false to accept it)"
        if stats.snapshotsSaved == 0 { missing.append("no snapshot of the state machine was saved in \(seedsRun) seeds " + change) }
        if stats.snapshotsRecovered == 0 { missing.append("no snapshot of the state machine was recovered in \(seedsRun) seeds " + change) }
        return missing
    }

    /// Whether every seed passed, and the seeds exercised snapshots as
    /// ``SimCheckOptions/requireSnapshots`` asks.
    public var passed: Bool { failures.isEmpty && unexercised.isEmpty }

    /// Throws the first failing seed, if any, or else what the seeds did not exercise.
    public func requirePassed() throws(SimCheckError) {
        if let first = failures.first { throw .seedFailed(first) }
        let missing = unexercised
        if !missing.isEmpty { throw .notExercised(missing) }
    }

    /// A summary line, then every failure in full.
    public var description: String {
        let s = stats
        let outcome = !failures.isEmpty ? "\(failures.count) failed" : passed ? "all passed" : "all passed, but not enough was exercised"
        var lines = [
            "simulation of the state machine: \(seedsRun) seeds, \(outcome)"
                + " (\(options.nodes) nodes, \(options.rounds) rounds each; \(s.entriesApplied) entries applied, \(s.statesCompared) states and "
                + "\(s.resultsCompared) results compared between nodes; \(s.snapshotsSaved) snapshots saved in \(seedsSavingSnapshots) seeds, "
                + "\(s.snapshotsChecked) checked against the state at their index as they were saved (\(s.snapshotsSavedBesideApply) after "
                + "more entries were applied), \(s.snapshotsRecovered) recovered in \(seedsRecoveringSnapshots) seeds)"
        ]
        // A failing seed says more than what the run did not reach.
        if failures.isEmpty { lines += unexercised.map { "not exercised: " + $0 } }
        lines += failures.map(\.description)
        return lines.joined(separator: "\n")
    }
}

/// One failing seed of ``SimCluster/check(_:seeds:options:)``: what your state machine broke
/// (``findings``, empty when the failure is another invariant's), the whole simulation failure
/// with its trace, and how to replay it.
public struct SimCheckFailure: Error, Sendable, CustomStringConvertible {
    /// The seed.
    public var seed: UInt64
    /// The faults it ran with.
    public var faults: SimFaults
    /// The rules the state machine broke, first found first.
    public var findings: [SimStateMachineFinding]
    /// The round, every violation found (the findings among them) and the recent events.
    public var simulation: SimulationFailure

    /// Creates a failure.
    public init(seed: UInt64, faults: SimFaults, findings: [SimStateMachineFinding], simulation: SimulationFailure) {
        self.seed = seed
        self.faults = faults
        self.findings = findings
        self.simulation = simulation
    }

    /// How to run this seed alone.
    public var replay: String {
        "SimCluster.check(<the same machine>, seeds: [\(seed)], options: <the same options>) runs this seed alone"
    }

    public var description: String {
        // The findings are violations too; the others are the invariants of Raft itself.
        let what = findings.map(\.description) + simulation.violations.filter { !$0.hasPrefix(SimStateMachineFinding.violationPrefix) }
        return """
            seed \(seed) failed at round \(simulation.round) (\(simulation.nodes) nodes):
              \(what.joined(separator: "\n  "))
            replay: \(replay)
            recent events:
              \(simulation.trace.suffix(20).joined(separator: "\n  "))
            """
    }
}

/// Why ``SimCheckReport/requirePassed()`` threw.
public enum SimCheckError: Error, Sendable, CustomStringConvertible {
    /// A seed failed: the first one.
    case seedFailed(SimCheckFailure)
    /// Every seed passed, but they did not exercise what ``SimCheckOptions/requireSnapshots``
    /// asks for (``SimCheckReport/unexercised``).
    case notExercised([String])

    public var description: String {
        switch self {
        case .seedFailed(let failure): return failure.description
        case .notExercised(let missing): return "the simulation passed without exercising enough: " + missing.joined(separator: "; ")
        }
    }
}
