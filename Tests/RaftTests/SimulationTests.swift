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
