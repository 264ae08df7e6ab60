import Raft

/// What ``SimCluster/check(_:seeds:options:)`` found: how many seeds ran, what your state
/// machine did in them, and each failing seed with how to replay it.
///
/// Use it from any test framework: assert ``passed`` and print the report, or call
/// ``requirePassed()``, which throws the first failure.
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

    /// An empty report.
    public init(options: SimCheckOptions) { self.options = options }

    /// Whether every seed passed.
    public var passed: Bool { failures.isEmpty }

    /// Throws the first failure, if any.
    public func requirePassed() throws(SimCheckFailure) {
        if let first = failures.first { throw first }
    }

    /// A summary line, then every failure in full.
    public var description: String {
        let s = stats
        var lines = [
            "simulation of the state machine: \(seedsRun) seeds, " + (passed ? "all passed" : "\(failures.count) failed")
                + " (\(options.nodes) nodes, \(options.rounds) rounds each; \(s.entriesApplied) entries applied, \(s.statesCompared) states and "
                + "\(s.resultsCompared) results compared between nodes, \(s.snapshotsSaved) snapshots saved, \(s.snapshotsRecovered) recovered)"
        ]
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
