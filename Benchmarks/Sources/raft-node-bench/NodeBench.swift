// End-to-end throughput and latency of three RaftNodes in one process: LocalTransport,
// FileLogStorage with fsync (each node in its own temporary directory), an in-memory state
// machine, real time. Concurrent proposers (Swift tasks) propose 16-byte commands to the leader
// in a loop; each concurrency level reports proposals/s, latency percentiles and fsyncs per
// committed proposal, against the disk's raw fdatasync latency measured in the same run.

#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import BenchSupport
import Raft
import RaftTransportTCP
import Synchronization

// MARK: - Options

enum SyncCounting: String, CaseIterable, ExpressibleByArgument {
    /// A `WritableLogStorage` wrapper around each `FileLogStorage` counts `sync()` calls.
    case storage
    /// The `FileLogStorage`s are handed to the nodes unwrapped; a `FileSystem` wrapper counts
    /// the files' `sync()` (fdatasync) calls instead.
    case fileSystem = "filesystem"
}

/// How the three nodes talk.
enum TransportKind: String, CaseIterable, Sendable {
    /// In process, through `LocalTransport`.
    case local
    /// Over TCP on 127.0.0.1, one `TCPTransport` per node.
    case tcp
}

/// A comma-separated list of transports (`local,tcp`).
struct TransportList: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var values: [TransportKind]

    init(_ values: [TransportKind]) { self.values = values }

    init?(argument: String) {
        var values: [TransportKind] = []
        for part in argument.split(separator: ",") {
            guard let kind = TransportKind(rawValue: String(part.filter { $0 != " " })) else { return nil }
            values.append(kind)
        }
        if values.isEmpty { return nil }
        self.values = values
    }

    var description: String { values.map(\.rawValue).joined(separator: ",") }
    var defaultValueDescription: String { description }
}

/// The command-line options (`--help` prints them with their defaults).
struct Options: ParsableArguments {
    @Option(name: [.customShort("d"), .customLong("duration")], help: ArgumentHelp("Measured time per concurrency level.", valueName: "seconds"))
    var seconds = 3.0

    @Option(name: [.customShort("w"), .customLong("warmup")], help: ArgumentHelp("Unmeasured warm-up per level.", valueName: "seconds"))
    var warmup = 0.5

    @Option(
        name: [.customShort("c"), .customLong("concurrency")],
        help: ArgumentHelp("Concurrent proposers per level, comma separated.", valueName: "list"))
    var levelList = IntList([1, 16, 64, 256])

    @Option(name: [.customShort("p"), .customLong("payload")], help: ArgumentHelp("Command size.", valueName: "bytes"))
    var payload = 16

    @Option(
        name: .customLong("raw-syncs"),
        help: ArgumentHelp("40-byte write + fdatasync rounds for the disk baseline, before and after.", valueName: "n"))
    var rawSyncs = 2_000

    @Option(name: .customLong("tick-ms"), help: ArgumentHelp("RaftNodeConfiguration.tickInterval in ms.", valueName: "n"))
    var tickMillis = 100

    @Option(name: .customLong("snapshot-every"), help: ArgumentHelp("RaftNodeConfiguration.snapshotEvery (0: never).", valueName: "n"))
    var snapshotEvery: UInt64 = 0

    @Option(
        name: .customLong("count"),
        help: ArgumentHelp(
            """
            How fsyncs are counted: 'storage' wraps each FileLogStorage in a counting WritableLogStorage; \
            'filesystem' hands the FileLogStorage to the node unwrapped and counts fdatasyncs in a FileSystem \
            wrapper instead (see README).
            """, valueName: "mode"))
    var counting = SyncCounting.storage

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where to create the temporary directories.", valueName: "path"))
    var parent = "/tmp"

    @Option(
        name: .customLong("preallocate"),
        help: ArgumentHelp("FileLogStorageOptions.preallocateBytes (0: off).", valueName: "bytes"))
    var preallocate = FileLogStorageOptions().preallocateBytes

    @Option(
        name: .customLong("transport"),
        help: ArgumentHelp("Transports to measure, one after the other in this run, comma separated: local, tcp.", valueName: "list"))
    var transports = TransportList([.local, .tcp])

    @Flag(
        name: .customLong("result-lines"),
        help: "After each level's row, print one machine-readable line (RESULT key=value ...; used by Benchmarks/peers/run.sh).")
    var resultLines = false

    /// The concurrency levels, in order.
    var levels: [Int] { levelList.values }

    func validate() throws {
        try requireSeconds(seconds, "--duration", allowZero: false)
        try requireSeconds(warmup, "--warmup", allowZero: true)
        try requireAll(levelList, atLeast: 1, "--concurrency")
        try require(payload > 0, "--payload needs a positive integer, got '\(payload)'")
        try require(rawSyncs > 0, "--raw-syncs needs a positive integer, got '\(rawSyncs)'")
        try require(tickMillis > 0, "--tick-ms needs a positive integer, got '\(tickMillis)'")
        try require(preallocate >= 0, "--preallocate needs a non-negative integer, got '\(preallocate)'")
    }
}

// MARK: - The state machine


// MARK: - Counting fsyncs

/// Counters one node's storage bumps from whichever thread persists; read by the benchmark.
final class SyncCounters: Sendable {
    /// `sync()` calls (mode `storage`) or file fdatasyncs (mode `filesystem`).
    let syncs = Atomic<Int>(0)
    /// `append(_:)` calls with at least one entry, and the entries they carried (mode `storage`).
    let appends = Atomic<Int>(0)
    let appendedEntries = Atomic<Int>(0)
    /// Time inside `sync()` / fdatasync, in nanoseconds.
    let syncNanos = Atomic<Int>(0)

    struct Reading {
        var syncs = 0
        var appends = 0
        var appendedEntries = 0
        var syncNanos = 0

        static func - (a: Reading, b: Reading) -> Reading {
            Reading(syncs: a.syncs - b.syncs, appends: a.appends - b.appends, appendedEntries: a.appendedEntries - b.appendedEntries,
                    syncNanos: a.syncNanos - b.syncNanos)
        }
        static func + (a: Reading, b: Reading) -> Reading {
            Reading(syncs: a.syncs + b.syncs, appends: a.appends + b.appends, appendedEntries: a.appendedEntries + b.appendedEntries,
                    syncNanos: a.syncNanos + b.syncNanos)
        }
    }

    func read() -> Reading {
        Reading(syncs: syncs.load(ordering: .relaxed), appends: appends.load(ordering: .relaxed),
                appendedEntries: appendedEntries.load(ordering: .relaxed), syncNanos: syncNanos.load(ordering: .relaxed))
    }
}

/// A `FileLogStorage` behind a `WritableLogStorage` that forwards every call and counts syncs
/// and appends.
final class SyncCountingStorage: WritableLogStorage {
    let base: FileLogStorage
    let counters: SyncCounters

    init(_ base: FileLogStorage, counters: SyncCounters) {
        self.base = base
        self.counters = counters
    }

    func initialState() throws(RaftError) -> (HardState, ConfState) { try base.initialState() }
    func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] { try base.entries(in: range, maxBytes: maxBytes) }
    func term(at index: LogIndex) throws(RaftError) -> Term { try base.term(at: index) }
    func firstIndex() -> LogIndex { base.firstIndex() }
    func lastIndex() -> LogIndex { base.lastIndex() }
    func snapshot() throws(RaftError) -> Snapshot { try base.snapshot() }
    func snapshotMetadata() -> SnapshotMetadata { base.snapshotMetadata() }
    // The streaming snapshot paths, so the node streams from the files as it would unwrapped.
    func openSnapshot() throws(RaftError) -> SnapshotInput { try base.openSnapshot() }
    func openSnapshot(verification: SnapshotVerification) throws(RaftError) -> SnapshotInput {
        try base.openSnapshot(verification: verification)
    }
    func beginSnapshot(at index: LogIndex, confState: ConfState?) throws(RaftError) -> SnapshotOutput {
        try base.beginSnapshot(at: index, confState: confState)
    }
    @discardableResult
    func finishSnapshot(_ output: SnapshotOutput) throws(RaftError) -> SnapshotMetadata { try base.finishSnapshot(output) }
    func beginReceivedSnapshot(_ metadata: SnapshotMetadata) throws(RaftError) -> SnapshotOutput {
        try base.beginReceivedSnapshot(metadata)
    }
    func applySnapshot(_ received: SnapshotOutput) throws(RaftError) { try base.applySnapshot(received) }
    var currentHardState: HardState { base.currentHardState }

    func append(_ entries: [LogEntry]) throws(RaftError) {
        if !entries.isEmpty {
            counters.appends.add(1, ordering: .relaxed)
            counters.appendedEntries.add(entries.count, ordering: .relaxed)
        }
        try base.append(entries)
    }

    func setHardState(_ state: HardState) throws(RaftError) { try base.setHardState(state) }
    func applySnapshot(_ snapshot: Snapshot) throws(RaftError) { try base.applySnapshot(snapshot) }

    @discardableResult
    func createSnapshot(at index: LogIndex, confState: ConfState?, data: [UInt8]) throws(RaftError) -> Snapshot {
        try base.createSnapshot(at: index, confState: confState, data: data)
    }

    func compact(upTo index: LogIndex) throws(RaftError) { try base.compact(upTo: index) }

    func sync() throws(RaftError) {
        counters.syncs.add(1, ordering: .relaxed)
        let t0 = ContinuousClock.now
        defer { counters.syncNanos.add(nanoseconds(t0.duration(to: .now)), ordering: .relaxed) }
        try base.sync()
    }

    var performsBlockingIO: Bool { base.performsBlockingIO }
    func close() { base.close() }
}

/// The real file system, with the files' `sync()` (fdatasync) counted.
final class SyncCountingFileSystem: FileSystem {
    let base = PosixFileSystem()
    let counters: SyncCounters

    init(counters: SyncCounters) { self.counters = counters }

    func createDirectory(_ path: String) throws(RaftError) { try base.createDirectory(path) }
    func contentsOfDirectory(_ path: String) throws(RaftError) -> [String] { try base.contentsOfDirectory(path) }
    func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile {
        SyncCountingFile(try base.open(path, create: create), counters: counters)
    }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func remove(_ path: String) throws(RaftError) { try base.remove(path) }
    func rename(_ from: String, to: String) throws(RaftError) { try base.rename(from, to: to) }
    func syncDirectory(_ path: String) throws(RaftError) { try base.syncDirectory(path) }
}

final class SyncCountingFile: StorageFile {
    let base: any StorageFile
    let counters: SyncCounters

    init(_ base: any StorageFile, counters: SyncCounters) {
        self.base = base
        self.counters = counters
    }

    func size() throws(RaftError) -> Int { try base.size() }
    func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8] { try base.read(at: offset, count: count) }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError) { try base.write(bytes, at: offset) }
    func sync() throws(RaftError) {
        counters.syncs.add(1, ordering: .relaxed)
        let t0 = ContinuousClock.now
        defer { counters.syncNanos.add(nanoseconds(t0.duration(to: .now)), ordering: .relaxed) }
        try base.sync()
    }
    func truncate(to size: Int) throws(RaftError) { try base.truncate(to: size) }
    func close() { base.close() }
    func reserve(_ bytes: Int) { base.reserve(bytes) }
}

// MARK: - The cluster

typealias Node = RaftNode<CountingStateMachine>

final class Cluster {
    let ids: [NodeID] = [1, 2, 3]
    let kind: TransportKind
    let local = LocalTransport()
    var tcp: [NodeID: TCPTransport] = [:]
    var tcpRuns: [Task<Void, any Error>] = []
    var nodes: [NodeID: Node] = [:]
    var counters: [NodeID: SyncCounters] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]

    init(root: String, options: Options, kind: TransportKind) async throws {
        self.kind = kind
        if kind == .tcp {
            // Bind each node's transport on a port the system chooses, then tell each the others'.
            var ports: [NodeID: Int] = [:]
            for id in ids {
                let c = TCPTransportConfiguration(clusterID: "raft-node-bench", nodeID: id, listenAddress: PeerAddress(host: "127.0.0.1", port: 0), peers: [:])
                let t = try TCPTransport(configuration: c)
                ports[id] = try await t.listen()
                tcp[id] = t
                tcpRuns.append(Task { try await t.run() })
            }
            for id in ids {
                tcp[id]!.setPeers(Dictionary(uniqueKeysWithValues: ids.filter { $0 != id }.map { ($0, PeerAddress(host: "127.0.0.1", port: ports[$0]!)) }))
            }
        }
        for id in ids {
            let c = SyncCounters()
            var conf = RaftNodeConfiguration(id: id)
            conf.tickInterval = .milliseconds(options.tickMillis)
            conf.snapshotEvery = options.snapshotEvery
            let transport: any RaftTransport = kind == .tcp ? tcp[id]! : local
            let node = try Node(
                configuration: conf, storage: Self.openStorage("\(root)/node\(id)", voters: ids, options: options, counters: c),
                stateMachine: CountingStateMachine(), transport: transport)
            if kind == .tcp { tcp[id]!.setReceiver { node.receive($0) } } else { local.register(id, receive: { node.receive($0) }) }
            nodes[id] = node
            counters[id] = c
        }
    }

    /// Bytes every node's transport wrote so far (zero in process).
    func wireBytes() -> Int64 { tcp.values.reduce(0) { $0 + $1.statistics.bytesOut } }

    /// Messages the transports dropped so far (zero in process).
    func wireDrops() -> Int64 { tcp.values.reduce(0) { $0 + $1.statistics.droppedMessages } }

    /// A node's storage, counting its syncs as `options` says. The node takes it over and closes
    /// it when it stops (the counting wrapper forwards `close()`).
    static func openStorage(_ directory: String, voters: [NodeID], options: Options, counters: SyncCounters) throws -> any WritableLogStorage {
        var fileOptions = FileLogStorageOptions()
        fileOptions.preallocateBytes = options.preallocate
        switch options.counting {
        case .storage:
            return SyncCountingStorage(try FileLogStorage(directory: directory, voters: voters, options: fileOptions), counters: counters)
        case .fileSystem:
            return try FileLogStorage(
                directory: directory, voters: voters, options: fileOptions, fileSystem: SyncCountingFileSystem(counters: counters))
        }
    }

    func start() {
        for id in ids {
            let node = nodes[id]!
            runs[id] = Task { try await node.run() }
        }
    }

    /// The leader, polling every node's status; nil after `seconds`.
    func leader(within seconds: Double = 15) async -> (id: NodeID, node: Node)? {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(seconds * 1000)))
        while ContinuousClock.now < deadline {
            for id in ids {
                if let s = try? await nodes[id]!.status(), s.raft.role == .leader { return (id, nodes[id]!) }
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    func reading(_ id: NodeID) -> SyncCounters.Reading { counters[id]!.read() }
    func readingAll() -> SyncCounters.Reading { ids.map(reading).reduce(SyncCounters.Reading(), +) }

    /// Stops every node and waits for their loops (each closes its storage). Returns the errors
    /// the loops ended with (other than being stopped).
    func stop() async -> [String] {
        var errors: [String] = []
        for id in ids {
            local.unregister(id)
            nodes[id]?.stop()
        }
        for id in ids {
            if case .failure(let e)? = await runs[id]?.result {
                if let r = e as? RaftError, r.code == .stopped { continue }
                errors.append("node \(id): \(e)")
            }
        }
        for t in tcp.values { await t.shutdown() }
        for r in tcpRuns {
            if case .failure(let e) = await r.result { errors.append("tcp transport: \(e)") }
        }
        return errors
    }
}

// MARK: - One concurrency level

/// Tells the proposers which phase the run is in.
final class Control: Sendable {
    static let warmup = 0, measure = 1, stop = 2
    let phase = Atomic<Int>(Control.warmup)
}

/// What one proposer task saw: the latency of each proposal that completed while the phase was
/// `measure`, and failed proposals (any phase) by error code.
struct ProposerTally: Sendable {
    var latencies: [Int] = []  // nanoseconds
    var errors: [String: Int] = [:]
}

struct LevelResult {
    var proposers: Int
    var seconds: Double
    var latencies: [Int]  // sorted, nanoseconds
    var errors: [String: Int]
    var all: SyncCounters.Reading
    var leader: SyncCounters.Reading
    var cpuUser: Double
    var cpuSystem: Double
    /// Bytes all three transports wrote in the measured window (TCP only).
    var wireBytes: Int64
    var wireDrops: Int64

    var completed: Int { latencies.count }
    var rate: Double { Double(completed) / seconds }
    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        // Nearest rank.
        let rank = Int((p * Double(latencies.count)).rounded(.up))
        return Double(latencies[min(latencies.count - 1, max(0, rank - 1))])
    }
    var mean: Double { latencies.isEmpty ? .nan : Double(latencies.reduce(0, +)) / Double(latencies.count) }
}

func runLevel(_ proposers: Int, leader: Node, cluster: Cluster, leaderID: NodeID, options: Options) async -> LevelResult {
    let control = Control()
    let payload = options.payload
    var tasks: [Task<ProposerTally, Never>] = []
    for k in 0..<proposers {
        tasks.append(Task {
            var tally = ProposerTally()
            tally.latencies.reserveCapacity(1 << 12)
            var seq: UInt64 = 0
            while control.phase.load(ordering: .relaxed) != Control.stop {
                seq += 1
                // A fresh command each time, as a client would send: proposer and sequence number.
                var command = [UInt8](repeating: 0, count: payload)
                for b in 0..<min(8, payload) { command[b] = UInt8(truncatingIfNeeded: seq >> (8 * UInt64(b))) }
                if payload > 8 { for b in 8..<min(16, payload) { command[b] = UInt8(truncatingIfNeeded: UInt64(k) >> (8 * UInt64(b - 8))) } }
                let t0 = ContinuousClock.now
                do {
                    _ = try await leader.propose(command)
                    let d = nanoseconds(t0.duration(to: .now))
                    if control.phase.load(ordering: .relaxed) == Control.measure { tally.latencies.append(d) }
                } catch {
                    let name = (error as? RaftError).map { "\($0.code)" } ?? "\(type(of: error))"
                    tally.errors[name, default: 0] += 1
                    if control.phase.load(ordering: .relaxed) == Control.stop { break }
                    try? await Task.sleep(for: .milliseconds(1))
                }
            }
            return tally
        })
    }
    try? await Task.sleep(for: .milliseconds(Int(options.warmup * 1000)))
    let all0 = cluster.readingAll()
    let leader0 = cluster.reading(leaderID)
    let wire0 = (cluster.wireBytes(), cluster.wireDrops())
    let cpu0 = processCPUSeconds()
    let t0 = ContinuousClock.now
    control.phase.store(Control.measure, ordering: .relaxed)
    try? await Task.sleep(for: .milliseconds(Int(options.seconds * 1000)))
    control.phase.store(Control.stop, ordering: .relaxed)
    let elapsed = t0.duration(to: .now)
    let all1 = cluster.readingAll()
    let leader1 = cluster.reading(leaderID)
    let wire1 = (cluster.wireBytes(), cluster.wireDrops())
    let cpu1 = processCPUSeconds()
    var latencies: [Int] = []
    var errors: [String: Int] = [:]
    for t in tasks {
        let tally = await t.value
        latencies.append(contentsOf: tally.latencies)
        for (k, v) in tally.errors { errors[k, default: 0] += v }
    }
    latencies.sort()
    return LevelResult(
        proposers: proposers, seconds: Double(nanoseconds(elapsed)) / 1e9, latencies: latencies, errors: errors, all: all1 - all0,
        leader: leader1 - leader0, cpuUser: cpu1.user - cpu0.user, cpuSystem: cpu1.system - cpu0.system, wireBytes: wire1.0 - wire0.0,
        wireDrops: wire1.1 - wire0.1)
}

// MARK: - The raw disk

struct RawSyncResult {
    var latencies: [Int]  // sorted, nanoseconds
    var mean: Double { Double(latencies.reduce(0, +)) / Double(max(1, latencies.count)) }
    var p50: Double { Double(latencies[(latencies.count - 1) / 2]) }
    var p99: Double { Double(latencies[min(latencies.count - 1, Int((0.99 * Double(latencies.count)).rounded(.up)) - 1)]) }
    var text: String { "mean \(latency(mean)), p50 \(latency(p50)), p99 \(latency(p99)) (\(grouped(Int(1e9 / mean))) syncs/s)" }
}

/// Appends a 40-byte record to a fresh file and fdatasyncs it, `rounds` times.
func measureRawSync(in directory: String, rounds: Int) throws(RaftError) -> RawSyncResult {
    let path = directory + "/raw-fdatasync.log"
    let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
    if fd < 0 { throw RaftError(.io, "cannot create \(path): errno \(errno)") }
    defer {
        close(fd)
        unlink(path)
    }
    var record = [UInt8](repeating: 0xA5, count: 40)
    var offset = 0
    var latencies: [Int] = []
    latencies.reserveCapacity(rounds)
    for k in 0..<(rounds + 20) {
        record[0] = UInt8(truncatingIfNeeded: k)
        let t0 = ContinuousClock.now
        let n = record.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        if n != record.count { throw RaftError(.io, "raw write failed: errno \(errno)") }
        if fdatasync(fd) != 0 { throw RaftError(.io, "raw fdatasync failed: errno \(errno)") }
        let d = nanoseconds(t0.duration(to: .now))
        offset += n
        if k >= 20 { latencies.append(d) }  // the first few allocate the file's first block
    }
    latencies.sort()
    return RawSyncResult(latencies: latencies)
}

// MARK: - Helpers


/// The process's CPU time so far, in user space and in the kernel (fsync and I/O submission).
func processCPUSeconds() -> (user: Double, system: Double) {
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return (seconds(ru.ru_utime), seconds(ru.ru_stime))
}







func ratio(_ a: Int, _ b: Int) -> String { b == 0 ? "-" : fixed(Double(a) / Double(b), 2) }

// MARK: - Main

@main
struct RaftNodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-node-bench",
        abstract: "Proposals/s and latency of three RaftNodes on FileLogStorage (fsync on), against the disk's fdatasync latency.",
        discussion: "Exits with status 3 when a target is missed. See Benchmarks/README.md.")

    @OptionGroup var options: Options

    func run() async throws {
        let root = makeTemporaryDirectory(in: options.parent, for: "raft-node-bench")
        defer { removeTree(root) }
        let missed: Bool
        do {
            missed = try await Self.run(options, root: root)
        } catch {
            print("raft-node-bench: failed: \(error)")
            throw ExitCode.failure
        }
        if missed { throw ExitCode(3) }
    }

    static func run(_ options: Options, root: String) async throws -> Bool {
        print("raft-node-bench: 3 RaftNodes over \(options.transports.values.map(\.title).joined(separator: ", then ")), FileLogStorage (fsync on) under \(root)")
        print(
            "\(options.payload)-byte commands, tick \(options.tickMillis) ms, snapshots "
                + (options.snapshotEvery == 0 ? "off" : "every \(options.snapshotEvery)")
                + ", \(fixed(options.warmup, 1)) s warm-up + \(fixed(options.seconds, 1)) s per level")
        switch options.counting {
        case .storage:
            print("fsyncs counted by a WritableLogStorage wrapper around each FileLogStorage (it forwards")
            print("performsBlockingIO, so persisting still runs off the cooperative pool).")
        case .fileSystem:
            print("fsyncs counted by a FileSystem wrapper; the nodes get their FileLogStorage unwrapped (I/O offloaded to")
            print("each node's DispatchQueue, as in real use).")
        }

        // The disk on its own, before the cluster touches it (and again after, for drift).
        let before = try measureRawSync(in: root, rounds: options.rawSyncs)
        print("raw disk, before: 40-byte append + fdatasync x \(grouped(options.rawSyncs)): \(before.text)")

        var byTransport: [TransportKind: [LevelResult]] = [:]
        var stopErrors: [String] = []
        for kind in options.transports.values {
            print("")
            print("== \(kind.title)")
            let (results, errors) = try await runCluster(kind, options: options, root: "\(root)/\(kind.rawValue)")
            byTransport[kind] = results
            stopErrors += errors
            for e in errors { print("raft-node-bench: \(e)") }
        }
        print("")
        print("proposals/s and latencies: proposals completed inside the measured window. fsync/prop: fsyncs of all three")
        print("nodes per completed proposal (leader: the leader's alone). batch: entries per leader append (storage mode).")
        print("fsync: mean time inside one sync() (all nodes). CPU: process user+system time per second (200% = both cores).")
        print("wire B/prop (TCP): bytes all three transports wrote (frames, headers included: appends to both followers, their")
        print("answers, heartbeats) per completed proposal.")
        print("")

        let after = try measureRawSync(in: root, rounds: options.rawSyncs)
        let pooled = RawSyncResult(latencies: (before.latencies + after.latencies).sorted())
        print("raw disk, after:  40-byte append + fdatasync x \(grouped(options.rawSyncs)): \(after.text)")
        print("raw disk, pooled: \(pooled.text)")

        // Targets.
        let results = byTransport[options.transports.values[0]] ?? []
        var missed = !stopErrors.isEmpty
        if let one = results.first(where: { $0.proposers == 1 }) {
            let p50 = one.percentile(0.5)
            let met = p50 < 2 * pooled.p50
            missed = missed || !met
            print(
                "target: 1 proposer, p50 latency < 2 x raw fdatasync p50 (2 x \(latency(pooled.p50)) = \(latency(2 * pooled.p50))): "
                    + "\(latency(p50)) = \(fixed(p50 / pooled.p50, 2)) x -> \(met ? "MET" : "MISSED")")
        } else {
            print("target: 1 proposer latency: not measured (no level with 1 proposer)")
        }
        if let many = results.first(where: { $0.proposers == 256 }) {
            let met = many.rate >= 100_000
            missed = missed || !met
            print("target: 256 proposers, >= 100,000 proposals/s: \(grouped(Int(many.rate.rounded()))) -> \(met ? "MET" : "MISSED")")
        } else {
            print("target: 256 proposers throughput: not measured (no level with 256 proposers)")
        }
        if let local = byTransport[.local], let tcp = byTransport[.tcp] {
            missed = compareTransports(local: local, tcp: tcp) || missed
        }
        return missed
    }
}
