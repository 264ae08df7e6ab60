import Foundation
import KVStore
import RaftTestKit

/// How one fault run goes.
public struct FaultRunOptions: Sendable {
    /// The `kvstore` executable.
    public var kvstore: String
    /// How long clients and faults run (the final checks come after).
    public var duration: Duration = .seconds(30)
    /// Seeds every random choice of the run (faults, targets, operations).
    public var seed: UInt64 = 1
    /// Concurrent clients, each with one request in flight.
    public var clients = 8
    /// Keys the clients use.
    public var keys = 8
    /// Requests without an answer after this many seconds count as "may have happened".
    public var requestTimeoutSeconds = 4
    /// One network namespace per node, for real partitions (as root, with `ip`); otherwise
    /// loopback without partitions.
    public var namespaces = true
    /// Each node's data on a small tmpfs of its own, filled up once during the run (needs root).
    public var fillDisk = true
    /// Add a member and remove a founder during the faults.
    public var membershipChange = true
    /// A self-check of the check, not a test of the service: send every get as a stale read
    /// (`?consistency=stale`, served by whichever node receives it) and check it as if it were
    /// linearizable. A run with partitions or pauses should then fail.
    public var unsafeStaleReads = false
    /// Where the run's directory goes (`<here>/kvfaults-<seed>-<uuid>`).
    public var workDirectory = NSTemporaryDirectory()
    /// Keep the run's directory (node logs, data) even when it passes.
    public var keepData = false
    /// Arguments every `kvstore serve` gets after the harness's own: the run's tuning.
    public var serveArguments = [
        "--tick-ms", "20", "--election-ticks", "25", "--snapshot-every", "400", "--compaction-trail", "100", "--log-level", "info",
    ]
    /// Where progress lines go.
    public var log: @Sendable (String) -> Void = { print($0) }

    /// Options for a run of `kvstore` at `kvstore`.
    public init(kvstore: String) { self.kvstore = kvstore }
}

/// What a fault run did and found.
public struct FaultRunReport: Sendable, CustomStringConvertible {
    /// The seed.
    public var seed: UInt64
    /// How the nodes were connected, and why not with namespaces when it fell back.
    public var network: String
    /// Each kind of fault and how often it was injected.
    public var faults: [String: Int] = [:]
    /// What the membership change and the full disk did.
    public var events: [String] = []
    /// Operations in the checked history, and of those with an unknown outcome.
    public var operations = 0
    /// Operations of unknown outcome (all writes: a read without an answer is left out).
    public var unknownOperations = 0
    /// Writes (puts, deletes, compare-and-swaps) that returned.
    public var completedWrites = 0
    /// Requests refused before acting (redirects included) and lease reads answered.
    public var refused = 0
    public var leaseReads = 0
    /// Answers 503 `diskFull` the clients got.
    public var diskFullAnswers = 0
    /// The checker's verdict.
    public var linearizability = ""
    /// Whether the history is linearizable.
    public var linearizable = false
    /// Everything that is wrong: unexpected process ends, state machines that differ, answers
    /// the API must not give.
    public var findings: [String] = []
    /// Where the logs are, when kept.
    public var directory: String?

    /// Whether the run found nothing wrong.
    public var passed: Bool { linearizable && findings.isEmpty }

    public var description: String {
        var lines = [
            "seed \(seed): \(passed ? "PASSED" : "FAILED"), network \(network)",
            "  faults: " + faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "  operations: \(operations) checked (\(completedWrites) writes returned, \(unknownOperations) of unknown outcome), \(refused) refused before acting, \(leaseReads) lease reads, \(diskFullAnswers) answers 503 diskFull",
            "  linearizability: \(linearizability.split(separator: "\n").first ?? "")",
        ]
        lines += events.map { "  \($0)" }
        if !linearizable { lines.append(linearizability) }
        lines += findings.map { "  FINDING: \($0)" }
        if let directory { lines.append("  logs and data: \(directory)") }
        return lines.joined(separator: "\n")
    }
}

/// One fault-injection run against real `kvstore` processes: three nodes, clients doing gets,
/// puts, deletes and compare-and-swaps, and faults at random (SIGKILL and restart, SIGSTOP and
/// SIGCONT, partitions, forced snapshots, a membership change, a full disk); then the history is
/// checked for linearizability, the state machines are compared, and every process is stopped.
///
/// ```swift
/// var options = FaultRunOptions(kvstore: "/path/to/kvstore")
/// options.seed = 7
/// let report = try await FaultRun(options).run()
/// print(report)   // report.passed
/// ```
public final class FaultRun: Sendable {
    let options: FaultRunOptions
    let founders = [1, 2, 3]

    /// A run with `options`.
    public init(_ options: FaultRunOptions) { self.options = options }

    /// Runs it. Throws only when the run cannot be set up (no `kvstore`, no directory); what
    /// the service did wrong is in the report.
    public func run() async throws -> FaultRunReport {
        guard FileManager.default.isExecutableFile(atPath: options.kvstore) else { throw FaultRunError("no kvstore executable at \(options.kvstore)") }
        // One run at a time on a machine: the namespaces, addresses and ports are the same
        // for every run.
        let lock = try await FaultRunLock.acquire()
        defer { lock.release() }
        await FaultRunLock.unmountLeftovers()
        let directory = "\(options.workDirectory)/kvfaults-\(options.seed)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let network = await FaultNetwork.setUp(ids: founders, namespaces: options.namespaces)
        var report = FaultRunReport(seed: options.seed, network: network.mode == .namespaces ? "namespaces (partitions by blackhole routes)" : "loopback, no partitions (\(network.fallbackReason ?? ""))")
        var disks = options.fillDisk && geteuid() == 0 && FaultCommand.find("mount") != nil
        if options.fillDisk && !disks { report.events.append("full disk: not run (tmpfs needs root and mount)") }
        if disks, let failure = await Self.probeTmpfs(in: directory) {
            disks = false
            report.events.append("full disk: not run (mounting a tmpfs failed: \(failure))")
        }
        let cluster = FaultCluster(
            kvstore: options.kvstore, directory: directory, network: network, founders: founders,
            serveArguments: options.serveArguments, diskBytes: disks ? 64 << 20 : nil)
        let clients = FaultClients(network: network, keys: options.keys, timeoutSeconds: options.requestTimeoutSeconds, staleReads: options.unsafeStaleReads)
        var failed = true
        do {
            for id in founders { try await cluster.start(id) }
            let context = FaultContext(options: options, cluster: cluster, clients: clients, network: network, disks: disks, founders: founders)
            try await context.waitForLeader(.seconds(30))
            options.log("seed \(options.seed): cluster up on \(network.mode); \(options.clients) clients and faults for \(options.duration)")
            try await context.exercise(into: &report)
            try await context.finish(into: &report)
            failed = !report.passed
        } catch {
            report.findings.append("the run stopped early: \(error)")
        }
        await cluster.tearDown(keepData: failed || options.keepData)
        await clients.shutdown()
        await network.tearDown()
        if failed || options.keepData { report.directory = directory }
        return report
    }
}

extension FaultRun {
    /// Mounts and unmounts a small tmpfs (a container may forbid it); `nil` when that works.
    static func probeTmpfs(in directory: String) async -> String? {
        let probe = "\(directory)/tmpfs-probe"
        do {
            try FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
            try await FaultCommand.run(FaultCommand.find("mount") ?? "/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe])
            try await FaultCommand.run(FaultCommand.find("umount") ?? "/bin/umount", [probe])
            try? FileManager.default.removeItem(atPath: probe)
            return nil
        } catch {
            return "\(error)"
        }
    }
}

/// The machine-wide lock that keeps fault runs (of the tests, of `kvstore-faults`) one at a time.
struct FaultRunLock {
    static let path = "/tmp/kvstore-faults.lock"
    let fd: Int32

    /// Waits (up to 30 minutes) for the lock.
    static func acquire() async throws -> FaultRunLock {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FaultRunError("cannot open \(path): errno \(errno)") }
        let deadline = ContinuousClock.now + .seconds(1800)
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard ContinuousClock.now < deadline else {
                close(fd)
                throw FaultRunError("another fault run held \(path) for 30 minutes")
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return FaultRunLock(fd: fd)
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// Unmounts the tmpfs disks of runs that died before cleaning up (their directories are
    /// named `kvfaults-*`); only called with the lock held, so none of them is in use.
    static func unmountLeftovers() async {
        guard geteuid() == 0, let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8), let umount = FaultCommand.find("umount") else { return }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 2, fields[2] == "tmpfs", fields[1].contains("/kvfaults-") else { continue }
            _ = try? await FaultCommand.run(umount, [String(fields[1])])
        }
    }
}
