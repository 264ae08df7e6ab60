// A membership change under load: three RaftNodes in one process (LocalTransport, FileLogStorage
// with fsync, real time) hold a long log; with proposers running on the leader, one follower is
// replaced by an empty node (learner, caught up, promoted, then the old follower removed). It
// prints the time each step took and the proposal rate, p50, p99 and the longest gap between two
// commits during the change beside the same figures of a steady interval of the same run.

#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import BenchSupport
import Raft
import Synchronization

@main
struct MembershipBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-membership-bench",
        abstract: "Replace one of three voters while proposers run: time taken, rate and p99 during the change beside the steady rate.")

    @Option(name: .customLong("proposers"), help: ArgumentHelp("Concurrent proposers on the leader.", valueName: "n"))
    var proposers = 64

    @Option(name: .customLong("preload"), help: ArgumentHelp("Entries committed before the change: the new node catches up at least these.", valueName: "n"))
    var preload = 100_000

    @Option(name: [.customShort("s"), .customLong("steady")], help: ArgumentHelp("Measured steady interval before the change.", valueName: "seconds"))
    var steadySeconds = 3.0

    @Option(name: .customLong("snapshot-every"), help: ArgumentHelp("RaftNodeConfiguration.snapshotEvery; 0 (the default) keeps the whole log, so the new node catches up from entries alone.", valueName: "n"))
    var snapshotEvery = 0

    @Option(name: .customLong("max-inflight-bytes"), help: ArgumentHelp("RaftConfiguration.maxInflightBytes (0: unlimited); -1 keeps the library's default.", valueName: "n"))
    var maxInflightBytes = -1

    @Option(name: .customLong("max-message-bytes"), help: ArgumentHelp("RaftConfiguration.maxMessageBytes; -1 keeps the library's default.", valueName: "n"))
    var maxMessageBytes = -1

    @Option(name: .customLong("catch-up-inflight-bytes"), help: ArgumentHelp("RaftConfiguration.catchUpMaxInflightBytes (0: no separate limit); -1 keeps the library's default.", valueName: "n"))
    var catchUpInflightBytes = -1

    @Option(name: .customLong("tick-ms"), help: ArgumentHelp("RaftNodeConfiguration.tickInterval in ms.", valueName: "n"))
    var tickMillis = 100

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where to create the temporary directories.", valueName: "path"))
    var parent = "/tmp"

    func validate() throws {
        try require(proposers >= 1, "--proposers needs a positive integer, got '\(proposers)'")
        try require(preload >= 0, "--preload needs a non-negative integer, got '\(preload)'")
        try requireSeconds(steadySeconds, "--steady", allowZero: false)
        try require(snapshotEvery >= 0, "--snapshot-every needs a non-negative integer, got '\(snapshotEvery)'")
        try require(tickMillis > 0, "--tick-ms needs a positive integer, got '\(tickMillis)'")
    }

    func run() async throws {
        let root = makeTemporaryDirectory(in: parent, for: "raft-membership-bench")
        defer { removeTree(root) }
        let cluster = try ChangeCluster(root: root) { conf in
            conf.tickInterval = .milliseconds(tickMillis)
            conf.snapshotEvery = UInt64(snapshotEvery)
            if maxInflightBytes >= 0 { conf.raft.maxInflightBytes = maxInflightBytes }
            if maxMessageBytes >= 0 { conf.raft.maxMessageBytes = maxMessageBytes }
            if catchUpInflightBytes >= 0 { conf.raft.catchUpMaxInflightBytes = catchUpInflightBytes }
        }
        do {
            try await measure(cluster)
        } catch {
            _ = await cluster.stop()
            throw error
        }
        let failures = await cluster.stop()
        if !failures.isEmpty { throw RaftError(.stateMachine, "nodes failed: \(failures)") }
    }

    func measure(_ cluster: ChangeCluster) async throws {
        cluster.start()
        let (leaderID, leader) = try await cluster.leader()
        let old = cluster.voters.first { $0 != leaderID }!
        let new = cluster.spare
        let raft = RaftNodeConfiguration(id: leaderID).raft
        print("raft-membership-bench: 3 voters, FileLogStorage with fsync, LocalTransport; \(proposers) proposers on the leader (node \(leaderID)); tick \(tickMillis) ms, snapshotEvery \(snapshotEvery), maxMessageBytes \(maxMessageBytes >= 0 ? maxMessageBytes : raft.maxMessageBytes), maxInflightBytes \(maxInflightBytes >= 0 ? maxInflightBytes : raft.maxInflightBytes), catchUpMaxInflightBytes \(catchUpInflightBytes >= 0 ? catchUpInflightBytes : raft.catchUpMaxInflightBytes)")
        print("replacing node \(old) with node \(new), which starts empty")

        let t0 = ContinuousClock.now
        let load = Load(origin: t0)
        let tasks = (0..<proposers).map { k in Task { await load.propose(to: leader, proposer: k) } }

        // Preload: the log the new node has to catch up.
        while load.committed < preload {
            try await Task.sleep(for: .milliseconds(20))
            if load.failed { break }
        }
        let preloaded = load.elapsed
        print("preload: \(grouped(load.committed)) entries committed in \(fixed(preloaded, 2)) s")

        // Steady interval.
        let steadyStart = load.elapsed
        try await Task.sleep(for: .milliseconds(Int(steadySeconds * 1000)))
        let steadyEnd = load.elapsed

        // The change.
        let changeStart = load.elapsed
        try await leader.addLearner(new, address: "node\(new)")
        let learnerAdded = load.elapsed
        let goal = try await leader.status().raft.commit
        let newNode = cluster.nodes[new]!
        let watcher = Task { try await waitUntilApplied(newNode, new, goal, origin: t0) }
        try await leader.addVoter(new, address: "node\(new)")
        let promoted = load.elapsed
        try await leader.remove(old)
        let removed = load.elapsed
        let caughtUp = try await watcher.value
        // A little after the change, so the window's end is not cut short by the stop.
        try await Task.sleep(for: .milliseconds(200))
        load.stop()
        for t in tasks { await t.value }
        let membership = try await leader.status().raft.membership

        print("")
        print("step                           at        took")
        func step(_ name: String, _ at: Double, _ since: Double) {
            print(padRight(name, 28) + padLeft(fixed(at - changeStart, 3) + " s", 9) + padLeft(fixed(at - since, 3) + " s", 12))
        }
        step("learner \(new) added", learnerAdded, changeStart)
        step("learner applied index \(goal.rawValue)", caughtUp, learnerAdded)
        step("caught up and promoted", promoted, learnerAdded)
        step("node \(old) removed", removed, promoted)
        print("membership after: voters \(membership.voters.map(\.description).joined(separator: ",")), learners \(membership.learners.count)")

        let steady = load.window(steadyStart, steadyEnd)
        let change = load.window(changeStart, removed)
        print("")
        print("interval          seconds   proposals/s    p50        p99        longest gap   from")
        for (name, w) in [("steady", steady), ("during change", change)] {
            print(padRight(name, 16) + padLeft(fixed(w.seconds, 2), 9) + padLeft(grouped(Int(w.rate)), 14) + padLeft(latency(w.p50), 11)
                + padLeft(latency(w.p99), 11) + padLeft(latency(w.longestGap), 14) + padLeft(fixed(w.gapStart, 3) + " s", 10))
        }
        if !load.errors.isEmpty { print("errors: " + load.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }

        // The targets, judged on figures of this run.
        let electionTimeout = Double(RaftNodeConfiguration(id: 1).raft.electionTicks * tickMillis) * 1e6
        var missed = false
        func target(_ met: Bool, _ text: String) {
            print("target: \(text): " + (met ? "met" : "MISSED"))
            missed = missed || !met
        }
        print("")
        target(change.longestGap < electionTimeout, "proposals keep committing throughout (no gap of an election timeout, \(latency(electionTimeout)))")
        target(change.p99 < 5 * steady.p99, "p99 during the change < 5x the steady p99 (\(fixed(change.p99 / steady.p99, 2))x)")
        target(membership.voters.sorted() == (cluster.voters.filter { $0 != old } + [new]).sorted(), "the membership is the three voters expected")
        if missed { throw ExitCode(3) }
    }
}

/// Proposals on the leader, each recorded with the time it completed, so any interval of the run
/// can be measured afterwards.
final class Load: Sendable {
    let origin: ContinuousClock.Instant
    private let running = Atomic<Bool>(true)
    private let done = Atomic<Int>(0)
    private let failure = Atomic<Bool>(false)
    /// Per proposer: (completed at, latency), both in nanoseconds from `origin`.
    private let samples = Mutex<[[(Int, Int)]]>([])
    private let errorCounts = Mutex<[String: Int]>([:])

    init(origin: ContinuousClock.Instant) { self.origin = origin }

    var committed: Int { done.load(ordering: .relaxed) }
    var failed: Bool { failure.load(ordering: .relaxed) }
    var elapsed: Double { Double(nanoseconds(origin.duration(to: .now))) / 1e9 }
    var errors: [String: Int] { errorCounts.withLock { $0 } }
    func stop() { running.store(false, ordering: .relaxed) }

    func propose(to node: ChangeCluster.Node, proposer k: Int) async {
        var mine: [(Int, Int)] = []
        mine.reserveCapacity(1 << 16)
        var seq: UInt64 = 0
        while running.load(ordering: .relaxed) {
            seq += 1
            var command = [UInt8](repeating: 0, count: 16)
            for b in 0..<8 { command[b] = UInt8(truncatingIfNeeded: seq >> (8 * UInt64(b))) }
            for b in 8..<16 { command[b] = UInt8(truncatingIfNeeded: UInt64(k) >> (8 * UInt64(b - 8))) }
            let start = nanoseconds(origin.duration(to: .now))
            do {
                _ = try await node.propose(command)
                let end = nanoseconds(origin.duration(to: .now))
                mine.append((end, end - start))
                done.add(1, ordering: .relaxed)
            } catch {
                let name = (error as? RaftError).map { "\($0.code)" } ?? "\(type(of: error))"
                errorCounts.withLock { $0[name, default: 0] += 1 }
                if (error as? RaftError)?.code == .stopped { failure.store(true, ordering: .relaxed) }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
        samples.withLock { $0.append(mine) }
    }

    struct Window {
        var seconds: Double
        var rate: Double
        var p50: Double
        var p99: Double
        /// The longest time in the window without a commit, its ends included.
        var longestGap: Double
        /// When the longest gap began, in seconds from the window's start.
        var gapStart: Double
    }

    /// The proposals that completed between `from` and `to` (seconds from `origin`).
    func window(_ from: Double, _ to: Double) -> Window {
        let (lo, hi) = (Int(from * 1e9), Int(to * 1e9))
        let inside = samples.withLock { $0.flatMap { $0.filter { $0.0 >= lo && $0.0 <= hi } } }
        let latencies = inside.map(\.1).sorted()
        let ends = [lo] + inside.map(\.0).sorted() + [hi]
        var (gap, gapStart) = (0, lo)
        for (a, b) in zip(ends, ends.dropFirst()) where b - a > gap { (gap, gapStart) = (b - a, a) }
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            return Double(latencies[min(latencies.count - 1, max(0, Int((p * Double(latencies.count)).rounded(.up)) - 1))])
        }
        let seconds = to - from
        return Window(
            seconds: seconds, rate: Double(latencies.count) / seconds, p50: percentile(0.5), p99: percentile(0.99), longestGap: Double(gap),
            gapStart: Double(gapStart - lo) / 1e9)
    }
}

/// Three voters and a spare node that starts with no membership (it waits to be added).
final class ChangeCluster {
    typealias Node = RaftNode<CountingStateMachine>
    let voters: [NodeID] = [1, 2, 3]
    let spare: NodeID = 4
    let transport = LocalTransport()
    var nodes: [NodeID: Node] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]

    init(root: String, configure: (inout RaftNodeConfiguration) -> Void) throws {
        for id in voters + [spare] {
            var conf = RaftNodeConfiguration(id: id)
            configure(&conf)
            let storage = try FileLogStorage(directory: "\(root)/node\(id)", voters: id == spare ? [] : voters)
            let node = try Node(configuration: conf, storage: storage, stateMachine: CountingStateMachine(), transport: transport)
            transport.register(id, receive: { node.receive($0) })
            nodes[id] = node
        }
    }

    func start() {
        for (id, node) in nodes { runs[id] = Task { try await node.run() } }
    }

    /// The leader among the voters, polling their status for up to 15 s.
    func leader() async throws -> (NodeID, Node) {
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        while ContinuousClock.now < deadline {
            for id in voters {
                if let s = try? await nodes[id]!.status(), s.raft.role == .leader { return (id, nodes[id]!) }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RaftError(.timeout, "no leader within 15 s")
    }

    /// Stops every node; returns the errors their loops ended with (other than being stopped).
    func stop() async -> [String] {
        for (id, node) in nodes {
            transport.unregister(id)
            node.stop()
        }
        var errors: [String] = []
        for (id, run) in runs.sorted(by: { $0.key < $1.key }) {
            if case .failure(let e) = await run.result {
                if let r = e as? RaftError, r.code == .stopped { continue }
                errors.append("node \(id): \(e)")
            }
        }
        return errors
    }
}

/// Seconds from `origin` at which `node` (node `id`) had applied `index`, polling every 5 ms for
/// up to five minutes.
func waitUntilApplied(_ node: ChangeCluster.Node, _ id: NodeID, _ index: LogIndex, origin: ContinuousClock.Instant) async throws -> Double {
    let deadline = ContinuousClock.now.advanced(by: .seconds(300))
    while ContinuousClock.now < deadline {
        if try await node.status().applied >= index { return Double(nanoseconds(origin.duration(to: .now))) / 1e9 }
        try await Task.sleep(for: .milliseconds(5))
    }
    throw RaftError(.timeout, "node \(id) did not apply index \(index.rawValue) within 300 s")
}
