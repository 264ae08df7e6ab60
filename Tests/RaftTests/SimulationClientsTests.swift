import Raft
import RaftTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Simulated clients on every node (linearizable, lease and stale gets, puts, deletes and
/// compare-and-swaps) under every fault, the history of linearizable operations checked with
/// the linearizability checker at the end of each seed.
@Suite("Simulation with clients")
struct SimulationClientsTests {
    static func env(_ name: String) -> String? {
        guard let p = getenv(name) else { return nil }
        return String(cString: p)
    }

    /// Seeds per mode (quorum reads, lease reads): 300 each by default, 600 in all;
    /// `RAFT_SIM_CLIENT_SEEDS` runs more.
    static let seeds = Int(env("RAFT_SIM_CLIENT_SEEDS") ?? "") ?? 300
    static let rounds = Int(env("RAFT_SIM_ROUNDS") ?? "") ?? 300
    static let shards = 8

    static func run(seed: UInt64, lease: Bool) throws -> SimClientsStats {
        var options = SimKVClients.Options()
        options.leaseReads = lease
        let nodes = seed % 3 == 0 ? 5 : 3
        return try SimCluster.simulateWithClients(
            seed: seed, nodes: nodes, rounds: rounds, faults: seed % 2 == 0 ? .all : .churn, clients: options,
            configure: { c in
                c.refuseProposalsOnFollower = true
                if lease {
                    c.readLease = ReadLease(maxClockDrift: 0.1)
                } else if seed % 4 >= 2 {
                    // Without CheckQuorum a leader cut off from the others keeps leading (and
                    // receiving reads) for as long as the partition lasts: the hardest case for
                    // quorum reads.
                    c.checkQuorum = false
                }
            })
    }

    @Test("linearizable histories, all faults", arguments: [false, true], 0..<shards)
    func linearizable(lease: Bool, shard: Int) throws {
        var reads = 0
        var writes = 0
        var seed = UInt64(shard)
        while seed < UInt64(Self.seeds) {
            let s = seed &+ (lease ? 0x1EA5E : 0xC11E) << 32
            do {
                let stats = try Self.run(seed: s, lease: lease)
                reads += stats.completedReads
                writes += stats.completedWrites
            } catch let f as SimulationFailure {
                Issue.record("\(f)\nreplay this one: RAFT_SIM_CLIENT_SEED=\(s) RAFT_SIM_CLIENT_LEASE=\(lease) swift test --filter SimulationClientsTests/replay")
                return
            }
            seed += UInt64(Self.shards)
        }
        // The clients must get real work done, or the check proves little.
        let perShard = Self.seeds / Self.shards
        #expect(reads > perShard * 5, "only \(reads) reads completed")
        #expect(writes > perShard * 5, "only \(writes) writes completed")
    }

    /// Replays one seed: `RAFT_SIM_CLIENT_SEED=<seed> RAFT_SIM_CLIENT_LEASE=true|false swift test
    /// --filter SimulationClientsTests/replay`.
    @Test func replay() throws {
        guard let s = Self.env("RAFT_SIM_CLIENT_SEED"), let seed = UInt64(s) else { return }
        let stats = try Self.run(seed: seed, lease: Self.env("RAFT_SIM_CLIENT_LEASE") == "true")
        print("seed \(seed): \(stats)")
    }
}
