import Raft
import RaftTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Randomized simulation: thousands of seeds, every fault on, every invariant checked after
/// every batch, then a liveness phase. A failure prints its seed and the command that replays it.
@Suite("Simulation")
struct SimulationTests {
    static func env(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// Seeds per cluster size: 1,000 for 3 nodes and 1,000 for 5 by default (2,000 in all);
    /// `RAFT_SIM_SEEDS` runs more.
    static let seedsPerSize = Int(env("RAFT_SIM_SEEDS") ?? "") ?? 1000
    static let rounds = Int(env("RAFT_SIM_ROUNDS") ?? "") ?? 500
    static let shards = 16

    @Test("3- and 5-node clusters, all faults", arguments: [3, 5], 0..<shards)
    func randomized(nodes: Int, shard: Int) throws {
        var committed: UInt64 = 0
        var seed = UInt64(shard)
        while seed < UInt64(Self.seedsPerSize) {
            do {
                // Half the seeds use the default fault mix, half a high-churn one.
                let faults: SimFaults = seed % 2 == 0 ? .all : .churn
                let stats = try SimCluster.simulate(seed: seed &+ UInt64(nodes) << 32, nodes: nodes, rounds: Self.rounds, faults: faults)
                committed += stats.committed.rawValue
            } catch let f as SimulationFailure {
                Issue.record("\(f)")
                return
            }
            seed += UInt64(Self.shards)
        }
        // The schedule must make real progress, or the safety checks prove little.
        #expect(committed > UInt64(Self.seedsPerSize / Self.shards) * 20)
    }

    /// Seeds of the membership simulation (issue 8): 1,000 by default.
    static let membershipSeeds = Int(env("RAFT_SIM_MEMBERSHIP_SEEDS") ?? "") ?? 1000

    /// Every fault of the default mix plus random membership changes (learners added, promoted,
    /// demoted and removed, voters added, removed and replaced through joint consensus, the
    /// leader among them) and leadership transfers, on clusters with spare nodes: 3 voters of 5
    /// nodes, 2 of 4, 3 of 4. Every invariant is checked against the membership in force, plus
    /// one more: no leader commits an entry its voters (old and new while joint) do not hold on
    /// a majority. Crash-restarts during changes must converge in the liveness phase.
    @Test("membership changes and transfers", arguments: 0..<8)
    func membershipChanges(shard: Int) throws {
        var seed = UInt64(shard)
        var changes = 0
        var transfers = 0
        while seed < UInt64(Self.membershipSeeds) {
            let (nodes, voters) = Self.membershipShape(seed)
            do {
                let stats = try SimCluster.simulate(
                    seed: seed &+ 0x3E3B << 32, nodes: nodes, voters: voters, rounds: Self.rounds, faults: .membership)
                changes += stats.membershipChanges
                transfers += stats.transfers
            } catch let f as SimulationFailure {
                Issue.record("\(f)\n(membership: replay with RAFT_SIM_MEMBERSHIP_SEED=\(seed) swift test --filter SimulationTests/replayMembership)")
                return
            }
            seed += 8
        }
        // The schedule must really change the membership, or the checks prove little.
        let runs = Self.membershipSeeds / 8
        #expect(changes > runs * 3, "only \(changes) membership changes in \(runs) runs")
        #expect(transfers > runs / 2, "only \(transfers) transfers in \(runs) runs")
    }

    static func membershipShape(_ seed: UInt64) -> (nodes: Int, voters: Int) {
        switch seed % 3 {
        case 0: (5, 3)
        case 1: (4, 2)
        default: (4, 3)
        }
    }

    /// Replays one membership seed: `RAFT_SIM_MEMBERSHIP_SEED=<seed> swift test --filter SimulationTests/replayMembership`.
    @Test func replayMembership() throws {
        guard let s = Self.env("RAFT_SIM_MEMBERSHIP_SEED"), let seed = UInt64(s) else { return }
        let (nodes, voters) = Self.membershipShape(seed)
        do {
            let stats = try SimCluster.simulate(seed: seed &+ 0x3E3B << 32, nodes: nodes, voters: voters, rounds: Self.rounds, faults: .membership)
            print("seed \(seed): committed \(stats.committed), \(stats.membershipChanges) changes, \(stats.transfers) transfers, settled in \(stats.settleRounds) rounds")
        } catch let f as SimulationFailure {
            Issue.record("\(f)")
        }
    }

    static let fileSeeds = Int(env("RAFT_SIM_FILE_SEEDS") ?? "") ?? 120

    /// The same simulation with every node on the real file storage over a simulated file
    /// system: a crash tears whatever was written but not synced, and the node must recover
    /// from what survived.
    @Test("file storage under crash-restart", arguments: 0..<4)
    func fileStorage(shard: Int) throws {
        var seed = UInt64(shard)
        var committed: UInt64 = 0
        while seed < UInt64(Self.fileSeeds) {
            let nodes = seed % 3 == 0 ? 5 : 3
            do {
                let stats = try SimCluster.simulate(
                    seed: seed &+ 0xF11E << 32, nodes: nodes, rounds: Self.rounds, faults: seed % 2 == 0 ? .all : .churn,
                    disk: { FileDisk(voters: $0) })
                committed += stats.committed.rawValue
            } catch let f as SimulationFailure {
                Issue.record("\(f)\n(file storage: replay with RAFT_SIM_DISK=file)")
                return
            }
            seed += 4
        }
        #expect(committed > UInt64(Self.fileSeeds / 4) * 20)
    }

    /// Replays one seed: `RAFT_SIM_SEED=<seed> RAFT_SIM_NODES=<n> swift test --filter SimulationTests/replay`.
    @Test func replay() throws {
        guard let s = Self.env("RAFT_SIM_SEED"), let seed = UInt64(s) else { return }
        let nodes = Int(Self.env("RAFT_SIM_NODES") ?? "") ?? 3
        let onFile = Self.env("RAFT_SIM_DISK") == "file"
        do {
            let faults: SimFaults = seed % 2 == 0 ? .all : .churn
            let stats = try SimCluster.simulate(
                seed: seed, nodes: nodes, rounds: Self.rounds, faults: faults,
                disk: { onFile ? FileDisk(voters: $0) as any SimDisk : MemoryDisk(voters: $0) })
            print("seed \(seed): committed \(stats.committed), proposed \(stats.proposed), settled in \(stats.settleRounds) rounds")
        } catch let f as SimulationFailure {
            Issue.record("\(f)")
        }
    }
}
