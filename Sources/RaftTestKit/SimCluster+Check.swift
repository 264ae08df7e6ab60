import Raft

/// How ``SimCluster/check(_:seeds:options:)`` runs each seed.
public struct SimCheckOptions: Sendable, Hashable {
    /// Voters per cluster.
    public var nodes = 3
    /// Rounds of the random schedule per seed, before the liveness phase.
    public var rounds = 300
    /// Rounds the liveness phase may take (faults off, network healed).
    public var livenessRounds = 400
    /// The fault profiles, by seed: seed `s` runs `faultProfiles[s % faultProfiles.count]`, so
    /// a seed replays with the same faults on its own. Empty means ``SimFaults/all``.
    public var faultProfiles: [SimFaults] = [.all, .churn]
    /// Runs every node on a real ``Raft/FileLogStorage`` over a ``SimulatedFileSystem``
    /// (``FileDisk``), whose crashes tear what was not synced; otherwise ``MemoryDisk``.
    public var fileStorage = false
    /// Rounds between preparing a snapshot of your state machine and saving it, while the node
    /// applies entries; see ``SimCluster/init(nodes:seed:faults:machine:snapshotSaveRounds:configure:disk:)``.
    public var snapshotSaveRounds: ClosedRange<Int> = 1...3
    /// Stops at the first failing seed (the default); otherwise runs every seed and reports
    /// every failure.
    public var stopAtFirstFailure = true
    /// Fails the report (``SimCheckReport/unexercised``) unless the seeds together saved at
    /// least one snapshot of your state machine and recovered at least one: a run that
    /// exercised neither says nothing about your snapshots. On by default; turn it off to
    /// replay one seed that happens to do neither, or for a profile without compactions.
    public var requireSnapshots = true

    /// Three nodes, 300 rounds, the ``SimFaults/all`` and ``SimFaults/churn`` profiles in turn.
    public init() {}

    /// The faults seed `seed` runs with.
    public func faults(for seed: UInt64) -> SimFaults {
        faultProfiles.isEmpty ? .all : faultProfiles[Int(seed % UInt64(faultProfiles.count))]
    }
}

extension SimCluster {
    /// Runs `machine` on every node of a simulated cluster, once per seed, under the seed's
    /// faults (drops, duplicates, delays, partitions, crash-restarts, stalled disks,
    /// compactions, snapshots sent to lagging followers), then heals the network and checks
    /// that the cluster makes progress again.
    ///
    /// After every batch the ``SafetyChecker`` checks Raft's invariants. Your machine's results
    /// are compared between every two nodes that applied the same command, and its states
    /// wherever two nodes stood at the same index: at the end of a batch of applies (batches
    /// of 1 to 4 entries, so nodes stop at different indexes) or right after a snapshot
    /// recovery. Each snapshot is compared, as it is saved, with the state the node held at
    /// its index. A difference is a ``SimStateMachineFinding`` naming the rule, the node, the
    /// index and the likely cause (a non-deterministic apply, a snapshot holding state from
    /// after its index, a recovery that ignores the snapshot, a snapshot that leaves out
    /// state, equal states saved as different bytes).
    ///
    /// The report counts what was exercised; by default (``SimCheckOptions/requireSnapshots``)
    /// it fails when no snapshot was saved or none recovered.
    ///
    /// ```swift
    /// let report = SimCluster.check(stateMachine: { MyMachine() }, commands: { random in
    ///     Array("set k\(random.next() % 16) \(random.next() % 100)".utf8)
    /// }, seeds: 0..<1000)
    /// try report.requirePassed()   // or #expect(report.passed, "\(report)")
    /// ```
    ///
    /// A failing seed replays on its own: pass `seeds: [seed]` with the same options (the
    /// report says so). Seeds run one after the other on the calling thread.
    public static func check<SM: StateMachine>(_ machine: SimMachineUnderTest<SM>, seeds: some Sequence<UInt64>, options: SimCheckOptions = SimCheckOptions())
        -> SimCheckReport
    {
        var report = SimCheckReport(options: options)
        for seed in seeds {
            let faults = options.faults(for: seed)
            var cluster: SimCluster?
            do {
                let made = try SimCluster(
                    nodes: options.nodes, seed: seed, faults: faults, machine: machine, snapshotSaveRounds: options.snapshotSaveRounds,
                    disk: { options.fileStorage ? FileDisk(voters: $0) as any SimDisk : MemoryDisk(voters: $0) })
                cluster = made
                let stats = try made.simulate(seed: seed, rounds: options.rounds, livenessRounds: options.livenessRounds)
                report.committed += stats.committed.rawValue
                report.add(made.stateMachineStats)
            } catch {
                let simulation: SimulationFailure
                switch error {
                case let failure as SimulationFailure: simulation = failure
                default:
                    simulation = SimulationFailure(
                        seed: seed, nodes: options.nodes, round: cluster?.round ?? 0, violations: ["setup: the cluster could not start: \(error)"],
                        trace: cluster?.trace ?? [])
                }
                report.add(cluster?.stateMachineStats ?? SimMachineStats())
                report.failures.append(SimCheckFailure(seed: seed, faults: faults, findings: cluster?.stateMachineFindings ?? [], simulation: simulation))
                if options.stopAtFirstFailure { break }
            }
        }
        return report
    }

    /// Runs the state machine `make` makes, fed the commands `commands` makes, once per seed;
    /// results are compared with `==`. See ``check(_:seeds:options:)``.
    ///
    /// - Parameter describeState: a digest of a state, equal exactly when two states are;
    ///   `nil` compares the bytes the state's snapshot saves.
    public static func check<SM: StateMachine>(
        stateMachine make: @escaping () throws -> SM, commands: @escaping (inout SeededGenerator) -> [UInt8], seeds: some Sequence<UInt64>,
        options: SimCheckOptions = SimCheckOptions(), describeState: ((SM) throws -> String)? = nil
    ) -> SimCheckReport where SM.Result: Equatable {
        check(SimMachineUnderTest(make: make, commands: commands, describeState: describeState), seeds: seeds, options: options)
    }

    /// Runs the state machine `make` makes, once per seed, comparing results with
    /// `resultsMatch`. See ``check(_:seeds:options:)``.
    public static func check<SM: StateMachine>(
        stateMachine make: @escaping () throws -> SM, commands: @escaping (inout SeededGenerator) -> [UInt8], seeds: some Sequence<UInt64>,
        options: SimCheckOptions = SimCheckOptions(), describeState: ((SM) throws -> String)? = nil,
        resultsMatch: @escaping (SM.Result, SM.Result) -> Bool
    ) -> SimCheckReport {
        check(SimMachineUnderTest(make: make, commands: commands, describeState: describeState, resultsMatch: resultsMatch), seeds: seeds, options: options)
    }
}
