// A three-node Raft cluster in one process, narrated in plain words.
//
// The cores run over the test kit's simulated network (messages in memory, storage in memory),
// driven by logical ticks, so every run is the same. Pass a number to pick another seed.
#if canImport(Glibc)
    import Glibc
#endif
import Raft
import RaftTestKit

let seed = CommandLine.arguments.dropFirst().first.flatMap { UInt64($0) } ?? 7

func say(_ s: String) { print(s) }

func text(_ d: [UInt8]) -> String { String(decoding: d, as: UTF8.self) }

/// Runs rounds (deliver messages, tick every node) until `done` or `limit` rounds pass.
func run(_ c: SimCluster, limit: Int = 400, until done: () -> Bool) -> Int? {
    for r in 1...limit {
        c.runRound()
        if done() { return r }
    }
    return nil
}

do {
    let cluster = try SimCluster(nodes: 3, seed: seed, faults: SimFaults(restartRate: 0, proposeRate: 0))
    say("Starting three nodes (1, 2, 3). Nobody is leader yet; each waits a random election timeout.")
    guard let rounds = run(cluster, until: { cluster.leader != nil }), let first = cluster.leader else {
        say("No leader was elected: this should not happen.")
        exit(1)
    }
    say("After \(rounds) ticks node \(first) won the election for term \(cluster.core(first)!.term).")

    let commands = ["set a=1", "set b=2", "set c=3"]
    for command in commands {
        let r = try cluster.propose(first, [Array(command.utf8)])!
        say("Client: '\(command)' proposed to node \(first), stored at log index \(r.lastIndex).")
    }
    _ = run(cluster) { cluster.ids.allSatisfy { cluster.machine($0).lastCommand == Array("set c=3".utf8) } }
    for id in cluster.ids {
        say("  node \(id) applied up to index \(cluster.machine(id).applied) (last command '\(text(cluster.machine(id).lastCommand))')")
    }

    say("Stopping the leader, node \(first).")
    cluster.crash(first)
    guard let r2 = run(cluster, until: { cluster.leader != nil }), let second = cluster.leader else {
        say("The two remaining nodes did not elect a leader: this should not happen.")
        exit(1)
    }
    say("After \(r2) ticks node \(second) took over as leader for term \(cluster.core(second)!.term).")
    let r = try cluster.propose(second, [Array("set d=4".utf8)])!
    say("Client: 'set d=4' proposed to node \(second), stored at log index \(r.lastIndex).")
    _ = run(cluster) { cluster.machine(second).lastCommand == Array("set d=4".utf8) }
    say("  committed with two of three nodes up: a majority is enough.")

    say("Restarting node \(first). It comes back as a follower and catches up from the new leader.")
    try cluster.restart(first)
    _ = run(cluster) { cluster.machine(first).lastCommand == Array("set d=4".utf8) }
    for id in cluster.ids {
        let c = cluster.core(id)!
        say("  node \(id): \(c.role), term \(c.term), applied up to index \(cluster.machine(id).applied)")
    }
    let same = Set(cluster.ids.map { cluster.machine($0).hash }).count == 1
    say(same ? "All three state machines hold the same data." : "State machines differ: this should not happen.")
    say(cluster.checker.violations.isEmpty ? "Safety checker: no violation of Raft's safety properties." : "Safety checker: \(cluster.checker.violations)")
    exit(same && cluster.checker.violations.isEmpty ? 0 : 1)
} catch {
    say("error: \(error)")
    exit(1)
}
