import Foundation
import Raft
import RaftTestKit
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Broken: the snapshot leaves out key `k0`, so a node that recovers a snapshot forgets it
/// (its snapshot bytes still look like everyone else's: only its results tell).
final class ForgetfulSnapshotKV: StateMachine {
    let inner = KVMachine()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] { try inner.apply(entries) }
    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot().filter { $0.key != "k0" } }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try KVMachine.saveSnapshot(context, to: output) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { try inner.recoverSnapshot(from: input, metadata: metadata) }
}

/// Broken: apply throws on a command that sets a value ending in 13.
final class ThrowingApplyKV: StateMachine {
    let inner = KVMachine()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        if entries.contains(where: { String(decoding: $0.data, as: UTF8.self).hasSuffix("13") }) { throw RaftError(.invalidArgument, "unlucky value") }
        return try inner.apply(entries)
    }
    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot() }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try KVMachine.saveSnapshot(context, to: output) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { try inner.recoverSnapshot(from: input, metadata: metadata) }
}

/// Broken: recovering any snapshot throws.
final class ThrowingRecoverKV: StateMachine {
    let inner = KVMachine()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] { try inner.apply(entries) }
    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot() }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try KVMachine.saveSnapshot(context, to: output) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { throw RaftError(.corruption, "cannot read it") }
}

/// The deterministic simulation running a user's state machine (`SimCluster.check`): the test
/// kit's sample machines pass, and each deliberately broken one (see
/// `StateMachineChecksTests.swift`) fails with its named rule and likely cause, on a seed that
/// replays.
@Suite("Simulation of the user's state machine")
struct SimStateMachineTests {
    static func env(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// Seeds a correct machine runs: 200 by default, in 4 shards; `RAFT_SIM_SM_SEEDS` runs more.
    static let seeds = UInt64(env("RAFT_SIM_SM_SEEDS") ?? "") ?? 200
    static let shards: UInt64 = 4
    /// Seeds a broken machine may take to fail (each stops at its first failing seed).
    static let brokenSeeds: UInt64 = 100

    static var options: SimCheckOptions {
        var o = SimCheckOptions()
        if let rounds = Int(env("RAFT_SIM_ROUNDS") ?? "") { o.rounds = rounds }
        return o
    }

    static func shard(_ n: UInt64) -> StrideTo<UInt64> { stride(from: n, to: seeds, by: Int(shards)) }

    /// The report must show the checks had something to compare: snapshots saved and
    /// recovered, states and results compared between nodes.
    static func expectWork(_ report: SimCheckReport) {
        let s = report.stats
        #expect(s.snapshotsSaved > 0 && s.snapshotsRecovered > 0, "\(report)")
        #expect(s.statesCompared > s.snapshotsRecovered && s.resultsCompared > 0, "\(report)")
        #expect(report.committed > UInt64(report.seedsRun) * 20, "\(report)")
    }

    /// Three nodes in two shards, five in the others.
    @Test("the sample key-value machine passes", arguments: 0..<shards)
    func keyValueMachinePasses(shard: UInt64) {
        var options = Self.options
        options.nodes = shard % 2 == 0 ? 3 : 5
        let report = SimCluster.check(stateMachine: { KVMachine() }, commands: kvCommand, seeds: Self.shard(shard), options: options)
        print(report)
        #expect(report.passed, "\(report)")
        #expect(report.seedsRun == Self.shard(shard).underestimatedCount)
        Self.expectWork(report)
    }

    /// Under membership changes (voters removed and added back, learners, joint changes,
    /// transfers) a correct machine passes: a removed node, no longer sent the log, is not
    /// required to apply the liveness marker (review of issue 14 item 2).
    @Test func correctMachinePassesUnderMembershipChanges() {
        var options = Self.options
        options.faultProfiles = [.membership]
        let report = SimCluster.check(stateMachine: { KVMachine() }, commands: kvCommand, seeds: 0..<40, options: options)
        #expect(report.passed, "\(report)")
        Self.expectWork(report)
    }

    /// States compared by a description; nodes on the real file storage, whose crashes tear
    /// what was not synced; snapshots saved at once.
    @Test func describedStatesOnFileStoragePass() {
        var options = Self.options
        options.fileStorage = true
        options.snapshotSaveRounds = 0...0
        let report = SimCluster.check(
            stateMachine: { KVMachine() }, commands: kvCommand, seeds: 0..<(Self.seeds / 8), options: options,
            describeState: { m in "\(m.values.sorted { $0.key < $1.key })" })
        print(report)
        #expect(report.passed, "\(report)")
        Self.expectWork(report)
    }

    /// Runs a broken machine until a seed fails; returns its first finding after checking that
    /// the failure names the seed and replays on its own with the same finding.
    static func firstFinding<SM: StateMachine>(_ machine: SimMachineUnderTest<SM>) throws -> SimStateMachineFinding {
        let report = SimCluster.check(machine, seeds: 0..<brokenSeeds, options: options)
        print(report)
        let failure = try #require(report.failures.first, "a broken state machine passed \(report.seedsRun) seeds")
        #expect(report.failures.count == 1 && report.seedsRun == Int(failure.seed) + 1, "it stops at the first failing seed")
        let finding = try #require(failure.findings.first, "\(failure)")
        #expect(failure.description.contains("seeds: [\(failure.seed)]"), "\(failure)")
        #expect(failure.simulation.violations.contains { $0.contains(finding.problem) }, "the finding is a checker violation")
        let replay = SimCluster.check(machine, seeds: [failure.seed], options: options)
        let again = try #require(replay.failures.first?.findings.first, "seed \(failure.seed) did not fail again: \(replay)")
        #expect(again.rule == finding.rule && again.cause == finding.cause, "replayed: \(again), first: \(finding)")
        return finding
    }

    @Test func nonDeterministicApplyIsFound() throws {
        let finding = try Self.firstFinding(SimMachineUnderTest(make: { StampingKV() }, commands: kvCommand))
        #expect(finding.rule == .stateMachineSafety || finding.rule == .sameResults, "\(finding)")
        #expect(finding.cause == .nonDeterministicApply, "\(finding)")
        #expect(finding.index != nil && finding.fix.contains("deterministic"), "\(finding)")
    }

    /// Found as the snapshot is saved (review of issue 14 item 2: before, only when a node
    /// recovered it).
    @Test func snapshotReadingLiveStateIsFound() throws {
        let finding = try Self.firstFinding(SimMachineUnderTest(make: { LiveSnapshotKV() }, commands: kvCommand))
        #expect(finding.rule == .snapshotIsolation, "\(finding)")
        #expect(finding.cause == .snapshotHoldsLaterState, "\(finding)")
        #expect(finding.problem.contains("after the snapshot's index") && finding.fix.contains("point-in-time"), "\(finding)")
    }

    @Test func recoverIgnoringTheSnapshotIsFound() throws {
        let finding = try Self.firstFinding(SimMachineUnderTest(make: { IgnoresSnapshotKV() }, commands: kvCommand))
        #expect(finding.rule == .stateMachineSafety, "\(finding)")
        #expect(finding.cause == .recoverIgnoresSnapshot, "\(finding)")
        #expect(finding.problem.contains("right after recovering"), "\(finding)")
    }

    /// A snapshot that leaves out state: its bytes compare equal, so the results tell; with a
    /// description of the whole state, a fresh instance recovered from the first snapshot
    /// saved differs from the state at its index.
    @Test func snapshotLeavingOutStateIsFound() throws {
        let byResults = try Self.firstFinding(SimMachineUnderTest(make: { ForgetfulSnapshotKV() }, commands: kvCommand))
        #expect(byResults.rule == .sameResults, "\(byResults)")
        #expect(byResults.cause == .snapshotLosesState, "\(byResults)")
        #expect(byResults.problem.contains("it recovered"), "\(byResults)")
        let byState = try Self.firstFinding(
            SimMachineUnderTest(make: { ForgetfulSnapshotKV() }, commands: kvCommand, describeState: { m in "\(m.inner.values.sorted { $0.key < $1.key })" }))
        #expect(byState.rule == .snapshotIsolation, "\(byState)")
        #expect(byState.cause == .snapshotLosesState, "\(byState)")
    }

    /// The single-instance checks name the same rule for the machine whose snapshot leaves out
    /// state: the round trip gives other results.
    @Test func stateMachineChecksAgreeOnTheForgetfulSnapshot() async throws {
        var options = StateMachineCheckOptions()
        options.checks = [.determinism, .snapshotRoundTrip]
        let report = await StateMachineChecks.run(make: { _ in ForgetfulSnapshotKV() }, commands: kvCommand, options: options)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .snapshotRoundTrip, "\(failure)")
    }

    @Test func resultsForNoopsAreFound() throws {
        let finding = try Self.firstFinding(SimMachineUnderTest(make: { NoopResultKV() }, commands: kvCommand))
        #expect(finding.rule == .oneResultPerCommand && finding.cause == .contract, "\(finding)")
        #expect(finding.problem.contains("which hold 0 commands"), "\(finding)")
    }

    /// An applied index that skips no-ops, on an on-disk machine given a new directory per
    /// instance: the simulation stops it as a node would.
    @Test func reportedAppliedIndexIsChecked() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("simsm-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: parent) }
        let made = Atomic<Int>(0)
        let finding = try Self.firstFinding(
            SimMachineUnderTest(
                make: {
                    let dir = parent + "/\(made.wrappingAdd(1, ordering: .relaxed).newValue)"
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                    return CommandIndexKV(directory: dir)
                }, commands: kvCommand))
        #expect(finding.rule == .reportedAppliedIndex && finding.cause == .contract, "\(finding)")
        #expect(finding.index == 1 && finding.problem.contains("reports applied index 0"), "\(finding)")
    }

    /// Results compared by the caller's comparison (for a `Result` that is not `Equatable`):
    /// it is asked once per comparison the report counts.
    @Test func resultsAreComparedByTheGivenComparison() {
        final class Count { var n = 0 }
        let count = Count()
        let report = SimCluster.check(
            stateMachine: { KVMachine() }, commands: kvCommand, seeds: 0..<10, options: Self.options,
            resultsMatch: { a, b in
                count.n += 1
                return a == b
            })
        #expect(report.passed, "\(report)")
        #expect(count.n > 0 && count.n == report.stats.resultsCompared, "\(count.n) calls, \(report)")
    }

    /// A state machine that throws is stopped, as a node stops, and named.
    @Test(arguments: ["apply", "recover", "factory"])
    func throwingMachinesAreFound(_ what: String) throws {
        let finding: SimStateMachineFinding
        switch what {
        case "apply": finding = try Self.firstFinding(SimMachineUnderTest(make: { ThrowingApplyKV() }, commands: kvCommand))
        case "recover": finding = try Self.firstFinding(SimMachineUnderTest(make: { ThrowingRecoverKV() }, commands: kvCommand))
        default:
            // Only the first three instances are made: the first restart fails (and the replay's
            // cluster cannot even start).
            let made = Atomic<Int>(0)
            finding = try Self.firstFinding(
                SimMachineUnderTest(
                    make: {
                        guard made.wrappingAdd(1, ordering: .relaxed).newValue <= 3 else { throw RaftError(.unavailable, "no instance today") }
                        return KVMachine()
                    }, commands: kvCommand))
        }
        let rule: SimStateMachineFinding.Rule = what == "apply" ? .applyThrows : what == "recover" ? .snapshotRecover : .freshInstance
        #expect(finding.rule == rule && finding.cause == .contract, "\(finding)")
        #expect(finding.problem.contains("threw"), "\(finding)")
    }

    /// Step by step: the user's instances are there to inspect, hold the same state once the
    /// cluster is quiet, and a restarted node rebuilds its state from its snapshot and the log.
    @Test func clusterRunsTheMachineStepByStep() throws {
        let cluster = try SimCluster(nodes: 3, seed: 7, machine: SimMachineUnderTest(make: { KVMachine() }, commands: kvCommand))
        #expect(cluster.campaign(1))
        cluster.stabilize()
        for k in 0..<12 { try cluster.propose(1, [Array("k\(k % 4)=\(k)".utf8)]) }
        cluster.stabilize()
        let applied = cluster.machine(1).applied
        #expect(cluster.compact(3) == applied)
        cluster.crash(3)
        try cluster.restart(3)
        cluster.stabilize()
        let values = cluster.ids.map { cluster.stateMachine($0, as: KVMachine.self)?.values }
        #expect(values.allSatisfy { $0 == ["k0": "8", "k1": "9", "k2": "10", "k3": "11"] }, "\(values)")
        #expect(cluster.stateMachine(3, as: KVMachine.self)?.restores == 1)
        #expect(cluster.stateMachineFindings.isEmpty && cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
        #expect(cluster.stateMachineStats.snapshotsRecovered == 1 && cluster.stateMachineStats.statesCompared > 0)
    }

    /// Simulated key-value clients propose commands a user's machine would not understand: they
    /// refuse such a cluster, with a violation, rather than feed it.
    @Test func clientsRefuseAUserMachine() throws {
        let cluster = try SimCluster(nodes: 3, seed: 1, machine: SimMachineUnderTest(make: { KVMachine() }, commands: kvCommand))
        let clients = SimKVClients(cluster: cluster, seed: 1)
        #expect(clients.violations.contains { $0.contains("not a user's state machine") }, "\(clients.violations)")
    }

    /// Replays one seed of the key-value machine:
    /// `RAFT_SIM_SM_SEED=<seed> swift test --filter SimStateMachineTests/replay`.
    @Test func replay() {
        guard let s = Self.env("RAFT_SIM_SM_SEED"), let seed = UInt64(s) else { return }
        let report = SimCluster.check(stateMachine: { KVMachine() }, commands: kvCommand, seeds: [seed], options: Self.options)
        print(report)
        #expect(report.passed, "\(report)")
    }
}
