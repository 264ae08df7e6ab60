import ArgumentParser
import Foundation
import KVFaults

/// `kvstore-faults`: fault-injection runs against real `kvstore serve` processes, each checked
/// for linearizability, convergence and clean process ends. Exits with status 1 if any run
/// found something.
@main
struct KVStoreFaults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore-faults",
        abstract: "Run kvstore under faults and check what clients saw.",
        discussion: """
            Each run starts three `kvstore serve` processes, runs clients (get, put, delete,
            compare-and-swap on a few keys) and injects faults at random: SIGKILL and restart,
            SIGSTOP and SIGCONT, network partitions (one network namespace per node, as root with
            iproute2; otherwise none, and the report says so), forced snapshots, a membership
            change (a node added, a founder removed) and a full disk (each node's data on a small
            tmpfs, as root). Then it heals everything, reads every key, checks the history with
            the linearizability checker of RaftTestKit, compares the state machines and stops
            every process, which must exit cleanly.

            An hour of runs (as root, from Examples/KVStore):
              swift build -c release --product kvstore --product kvstore-faults
              .build/release/kvstore-faults --kvstore .build/release/kvstore --runs 100 --seconds 30
            """)

    @Option(help: "The kvstore executable (default: next to this one).")
    var kvstore: String?

    @Option(help: "How many runs.")
    var runs = 1

    @Option(help: "Seconds of clients and faults per run.")
    var seconds = 30

    @Option(help: "The first run's seed; run N uses seed + N.")
    var seed: UInt64 = UInt64(Date().timeIntervalSince1970)

    @Option(help: "Concurrent clients.")
    var clients = 8

    @Option(help: "Keys the clients use.")
    var keys = 8

    @Flag(help: "Every node on 127.0.0.1, no partitions (no network namespaces).")
    var loopback = false

    @Flag(help: "Never fill a disk (no tmpfs).")
    var noDiskFull = false

    @Flag(help: "No membership change.")
    var noMembershipChange = false

    @Flag(help: "Self-check of the checker: send gets as stale reads but check them as linearizable (runs with partitions should fail).")
    var unsafeStaleReads = false

    @Option(help: "Where run directories go (kept for failed runs).")
    var workDir = NSTemporaryDirectory()

    func run() async throws {
        let executable = kvstore ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvstore").path
        var failures: [UInt64] = []
        let started = ContinuousClock.now
        for n in 0..<runs {
            var options = FaultRunOptions(kvstore: executable)
            options.seed = seed &+ UInt64(n)
            options.duration = .seconds(seconds)
            options.clients = clients
            options.keys = keys
            options.namespaces = !loopback
            options.fillDisk = !noDiskFull
            options.membershipChange = !noMembershipChange
            options.workDirectory = workDir
            options.unsafeStaleReads = unsafeStaleReads
            let report = try await FaultRun(options).run()
            print(report)
            if !report.passed { failures.append(options.seed) }
            print("run \(n + 1) of \(runs) done; \(failures.count) failed so far; \(started.duration(to: .now).formatted(.units(allowed: [.minutes, .seconds], width: .narrow))) elapsed")
        }
        print(failures.isEmpty ? "all \(runs) runs passed" : "\(failures.count) of \(runs) runs failed: seeds \(failures)")
        if !failures.isEmpty { throw ExitCode.failure }
    }
}
