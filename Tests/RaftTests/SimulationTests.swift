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

    /// Replays one seed: `RAFT_SIM_SEED=<seed> RAFT_SIM_NODES=<n> swift test --filter SimulationTests/replay`.
    @Test func replay() throws {
        guard let s = Self.env("RAFT_SIM_SEED"), let seed = UInt64(s) else { return }
        let nodes = Int(Self.env("RAFT_SIM_NODES") ?? "") ?? 3
        do {
            let faults: SimFaults = seed % 2 == 0 ? .all : .churn
            let stats = try SimCluster.simulate(seed: seed, nodes: nodes, rounds: Self.rounds, faults: faults)
            print("seed \(seed): committed \(stats.committed), proposed \(stats.proposed), settled in \(stats.settleRounds) rounds")
        } catch let f as SimulationFailure {
            Issue.record("\(f)")
        }
    }
}
