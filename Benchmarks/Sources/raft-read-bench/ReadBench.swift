// Reads beside writes on three RaftNodes in one process: LocalTransport, FileLogStorage with
// fsync (each node in its own temporary directory), real time. Writers propose 16-byte commands
// to the leader in a loop while readers run linearizable or lease reads on the leader or on a
// follower; each mode prints reads/s and writes/s measured in the same interval, with latency
// percentiles, so the ratios compare figures from one run.

#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import BenchSupport
import Raft
import Synchronization

enum Mode: String, CaseIterable, ExpressibleByArgument {
    case writesOnly = "writes-only"
    case leaderLinearizable = "leader-linearizable"
    case followerLinearizable = "follower-linearizable"
    case leaderLease = "leader-lease"
    case followerLease = "follower-lease"

    var consistency: ReadConsistency? {
        switch self {
        case .writesOnly: nil
        case .leaderLinearizable, .followerLinearizable: .linearizable
        case .leaderLease, .followerLease: .lease
        }
    }

    var onFollower: Bool { self == .followerLinearizable || self == .followerLease }
}

struct ModeList: ExpressibleByArgument, CustomStringConvertible {
    var modes: [Mode]
    init(_ modes: [Mode]) { self.modes = modes }
    init?(argument: String) {
        var m: [Mode] = []
        for part in argument.split(separator: ",") {
            guard let mode = Mode(rawValue: String(part)) else { return nil }
            m.append(mode)
        }
        guard !m.isEmpty else { return nil }
        modes = m
    }
    var description: String { modes.map(\.rawValue).joined(separator: ",") }
    var defaultValueDescription: String { description }
}

@main
struct ReadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-read-bench",
        abstract: "Linearizable and lease reads beside writes on three RaftNodes with fsync.")

    @Option(name: [.customShort("d"), .customLong("duration")], help: ArgumentHelp("Measured time per mode.", valueName: "seconds"))
    var seconds = 3.0

    @Option(name: [.customShort("w"), .customLong("warmup")], help: ArgumentHelp("Unmeasured warm-up per mode.", valueName: "seconds"))
    var warmup = 0.5

    @Option(name: .customLong("writers"), help: ArgumentHelp("Concurrent writers (proposing to the leader).", valueName: "n"))
    var writers = 64

    @Option(name: .customLong("readers"), help: ArgumentHelp("Concurrent readers.", valueName: "n"))
    var readers = 64

    @Option(name: .customLong("modes"), help: ArgumentHelp("Modes to run, comma separated: \(Mode.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "list"))
    var modeList = ModeList(Mode.allCases)

    @Option(name: .customLong("tick-ms"), help: ArgumentHelp("RaftNodeConfiguration.tickInterval in ms.", valueName: "n"))
    var tickMillis = 100

    @Option(name: .customLong("read-rounds"), help: ArgumentHelp("RaftConfiguration.maxReadRoundsInFlight (0: no limit).", valueName: "n"))
    var readRounds = RaftConfiguration(id: 1).maxReadRoundsInFlight

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where to create the temporary directories.", valueName: "path"))
    var parent = "/tmp"

    func validate() throws {
        try requireSeconds(seconds, "--duration", allowZero: false)
        try requireSeconds(warmup, "--warmup", allowZero: true)
        try require(writers >= 1, "--writers needs a positive integer, got '\(writers)'")
        try require(readers >= 1, "--readers needs a positive integer, got '\(readers)'")
        try require(tickMillis > 0, "--tick-ms needs a positive integer, got '\(tickMillis)'")
        try require(readRounds >= 0, "--read-rounds needs a non-negative integer, got '\(readRounds)'")
    }

    func run() async throws {
        let root = makeTemporaryDirectory(in: parent, for: "raft-read-bench")
        defer { removeTree(root) }
        let cluster = try ReadCluster(root: root, tickMillis: tickMillis, readRounds: readRounds)
        cluster.start()
        guard let (leaderID, leader) = await cluster.leader() else {
            _ = await cluster.stop()
            throw RaftError(.timeout, "no leader within 15 s")
        }
        let followerID = cluster.ids.first { $0 != leaderID }!
        print("raft-read-bench: 3 nodes, FileLogStorage with fsync, LocalTransport; \(writers) writers on the leader (node \(leaderID)), \(readers) readers; \(seconds) s per mode after \(warmup) s warm-up")
        print("lease: ReadLease(maxClockDrift: 0.1), electionTicks 10, tick \(tickMillis) ms; maxReadRoundsInFlight \(readRounds)")
        print("")
        print("mode                    writes/s   w p50     w p99     reads/s    r p50     r p99     reads/writes  r p99/w p99")
        var results: [Mode: ModeResult] = [:]
        for mode in modeList.modes {
            let reader = mode.onFollower ? cluster.nodes[followerID]! : leader
            let r = await measure(mode: mode, cluster: cluster, leader: leader, reader: reader)
            results[mode] = r
            var line = padRight(mode.rawValue, 22) + padLeft(grouped(Int(r.writes.rate)), 10) + padLeft(latency(r.writes.percentile(0.5)), 10)
                + padLeft(latency(r.writes.percentile(0.99)), 10)
            if mode.consistency != nil {
                line += padLeft(grouped(Int(r.reads.rate)), 11) + padLeft(latency(r.reads.percentile(0.5)), 10)
                    + padLeft(latency(r.reads.percentile(0.99)), 10) + padLeft(fixed(r.reads.rate / max(r.writes.rate, 1), 2) + "x", 14)
                    + padLeft(fixed(r.reads.percentile(0.99) / max(r.writes.percentile(0.99), 1), 2), 13)
            }
            print(line)
            print("    " + r.counts.summary(leader: leaderID, reader: mode.onFollower ? followerID : leaderID, follower: followerID))
            let errors = r.writes.errors.merging(r.reads.errors, uniquingKeysWith: +)
            if !errors.isEmpty { print("    errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")) }
        }
        let failures = await cluster.stop()
        if !failures.isEmpty { throw RaftError(.stateMachine, "nodes failed: \(failures)") }
        // The issue's targets, each judged on figures of the same mode's run.
        var missed: [String] = []
        func target(_ mode: Mode, _ ok: (ModeResult) -> Bool, _ text: String) {
            guard let r = results[mode] else { return }
            let met = ok(r)
            print("target: \(text): " + (met ? "met" : "MISSED"))
            if !met { missed.append(text) }
        }
        print("")
        target(.leaderLinearizable, { $0.reads.rate >= 5 * $0.writes.rate }, "linearizable reads on the leader >= 5x the write rate")
        target(.leaderLease, { $0.reads.rate >= 10 * $0.writes.rate }, "lease reads on the leader >= 10x the write rate")
        for mode in Mode.allCases where mode.consistency != nil {
            target(mode, { $0.reads.percentile(0.99) < 2 * $0.writes.percentile(0.99) }, "\(mode.rawValue): read p99 < 2x write p99")
        }
        if !missed.isEmpty { throw ExitCode(3) }
    }

    typealias ModeResult = (writes: Tally, reads: Tally, counts: NodeCounts)

    func measure(mode: Mode, cluster: ReadCluster, leader: ReadCluster.Node, reader: ReadCluster.Node) async -> ModeResult {
        let phase = Phase()
        var writeTasks: [Task<Tally, Never>] = []
        for k in 0..<writers {
            writeTasks.append(Task {
                var seq: UInt64 = 0
                return await loop(phase) {
                    seq += 1
                    var command = [UInt8](repeating: 0, count: 16)
                    for b in 0..<8 { command[b] = UInt8(truncatingIfNeeded: seq >> (8 * UInt64(b))) }
                    for b in 8..<16 { command[b] = UInt8(truncatingIfNeeded: UInt64(k) >> (8 * UInt64(b - 8))) }
                    _ = try await leader.propose(command)
                }
            })
        }
        var readTasks: [Task<Tally, Never>] = []
        if let consistency = mode.consistency {
            for _ in 0..<readers {
                readTasks.append(Task { await loop(phase) { _ = try await reader.read(consistency) { $0.commands } } })
            }
        }
        try? await Task.sleep(for: .milliseconds(Int(warmup * 1000)))
        let t0 = ContinuousClock.now
        let before = NodeCounts(cluster.metrics, ids: cluster.ids)
        phase.value.store(1, ordering: .relaxed)
        try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        phase.value.store(2, ordering: .relaxed)
        let elapsed = Double(nanoseconds(t0.duration(to: .now))) / 1e9
        let counts = NodeCounts(cluster.metrics, ids: cluster.ids).since(before, seconds: elapsed)
        var writes = Tally()
        for t in writeTasks { writes.merge(await t.value) }
        var reads = Tally()
        for t in readTasks { reads.merge(await t.value) }
        writes.finish(seconds: elapsed)
        reads.finish(seconds: elapsed)
        return (writes, reads, counts)
    }
}

/// Which phase a run is in: 0 warm-up, 1 measured, 2 stopping.
final class Phase: Sendable {
    let value = Atomic<Int>(0)
}

/// Runs `operation` until the phase is 2, timing each call that completes while it is 1.
func loop(_ phase: Phase, _ operation: () async throws -> Void) async -> Tally {
    var tally = Tally()
    tally.latencies.reserveCapacity(1 << 12)
    while phase.value.load(ordering: .relaxed) != 2 {
        let t0 = ContinuousClock.now
        do {
            try await operation()
            if phase.value.load(ordering: .relaxed) == 1 { tally.latencies.append(nanoseconds(t0.duration(to: .now))) }
        } catch {
            let name = (error as? RaftError).map { "\($0.code)" } ?? "\(type(of: error))"
            tally.errors[name, default: 0] += 1
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
    return tally
}

/// Latencies (nanoseconds) and errors of one kind of operation.
struct Tally: Sendable {
    var latencies: [Int] = []
    var errors: [String: Int] = [:]
    var seconds = 1.0

    mutating func merge(_ other: Tally) {
        latencies += other.latencies
        for (k, v) in other.errors { errors[k, default: 0] += v }
    }

    mutating func finish(seconds: Double) {
        latencies.sort()
        self.seconds = seconds
    }

    var rate: Double { Double(latencies.count) / seconds }

    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let rank = Int((p * Double(latencies.count)).rounded(.up))
        return Double(latencies[min(latencies.count - 1, max(0, rank - 1))])
    }
}


final class ReadCluster {
    typealias Node = RaftNode<CountingStateMachine>
    let ids: [NodeID] = [1, 2, 3]
    let transport = LocalTransport()
    let metrics = CountingMetrics()
    var nodes: [NodeID: Node] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]

    init(root: String, tickMillis: Int, readRounds: Int) throws {
        for id in ids {
            var conf = RaftNodeConfiguration(id: id)
            conf.tickInterval = .milliseconds(tickMillis)
            conf.snapshotEvery = 0
            conf.raft.readLease = ReadLease(maxClockDrift: 0.1)
            conf.metricsFactory = metrics
            conf.raft.maxReadRoundsInFlight = readRounds
            let node = try Node(
                configuration: conf, storage: try FileLogStorage(directory: "\(root)/node\(id)", voters: ids), stateMachine: CountingStateMachine(),
                transport: transport)
            transport.register(id, receive: { node.receive($0) })
            nodes[id] = node
        }
    }

    func start() {
        for id in ids {
            let node = nodes[id]!
            runs[id] = Task { try await node.run() }
        }
    }

    /// The leader, polling every node's status; nil after 15 s.
    func leader() async -> (NodeID, Node)? {
        let deadline = ContinuousClock.now.advanced(by: .seconds(15))
        while ContinuousClock.now < deadline {
            for id in ids {
                if let s = try? await nodes[id]!.status(), s.raft.role == .leader { return (id, nodes[id]!) }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Stops every node; returns the errors their loops ended with (other than being stopped).
    func stop() async -> [String] {
        for id in ids {
            transport.unregister(id)
            nodes[id]?.stop()
        }
        var errors: [String] = []
        for id in ids {
            if case .failure(let e)? = await runs[id]?.result {
                if let r = e as? RaftError, r.code == .stopped { continue }
                errors.append("node \(id): \(e)")
            }
        }
        return errors
    }
}


func padRight(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

/// Per-second rates of the nodes' counters over one measured interval (or their totals at one
/// moment).
struct NodeCounts: Sendable {
    static let labels = ["raft_read_rounds_total", "raft_reads_confirmed_total", "raft_steps_during_persist_total", "raft_fsync_latency"]
    var values: [NodeID: [String: Double]] = [:]

    init(_ metrics: CountingMetrics, ids: [NodeID]) {
        for id in ids {
            var v: [String: Double] = [:]
            for label in Self.labels { v[label] = Double(metrics.value(label, node: id.description)) }
            values[id] = v
        }
    }

    init(values: [NodeID: [String: Double]]) { self.values = values }

    func since(_ earlier: NodeCounts, seconds: Double) -> NodeCounts {
        var rates: [NodeID: [String: Double]] = [:]
        for (id, v) in values {
            let then = earlier.values[id] ?? [:]
            rates[id] = Dictionary(uniqueKeysWithValues: v.map { ($0.key, ($0.value - (then[$0.key] ?? 0)) / seconds) })
        }
        return NodeCounts(values: rates)
    }

    func rate(_ label: String, _ id: NodeID) -> Double { values[id]?[label] ?? 0 }

    /// One line: the leader's read rounds/s and reads confirmed per round on the reading node,
    /// fsyncs/s and events taken during a persist per second on the leader and a follower.
    func summary(leader: NodeID, reader: NodeID, follower: NodeID) -> String {
        let rounds = rate("raft_read_rounds_total", leader)
        let confirmed = rate("raft_reads_confirmed_total", reader)
        return "leader: \(grouped(Int(rounds))) read rounds/s, \(fixed(confirmed / max(rounds, 1), 1)) reads confirmed per round on node \(reader); "
            + "fsyncs/s leader \(grouped(Int(rate("raft_fsync_latency", leader)))), follower \(grouped(Int(rate("raft_fsync_latency", follower)))); "
            + "steps during a persist/s leader \(grouped(Int(rate("raft_steps_during_persist_total", leader)))), follower \(grouped(Int(rate("raft_steps_during_persist_total", follower))))"
    }
}
