// Throughput and allocation benchmark of three in-process RaftCores.
//
// No I/O: messages are handed over through in-memory queues and every node persists into a
// MemoryLogStorage. Node 1 is elected; then, round after round, it proposes a batch of
// commands and every node's Ready is carried out (send, persist, apply, advance) before the
// queued messages are stepped into their targets. Committed entries per second are the
// entries the leader applied; allocations are counted by the MallocCounter target, which
// interposes the C allocator.

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BenchSupport
import MallocCounter
import Raft

// MARK: - Options

/// The command-line options (`--help` prints them with their defaults).
struct Options: ParsableArguments {
    @Option(name: [.customShort("d"), .customLong("duration")], help: ArgumentHelp("Measured run per payload size.", valueName: "seconds"))
    var seconds = 3.0

    @Option(name: [.customShort("w"), .customLong("warmup")], help: ArgumentHelp("Unmeasured warm-up per payload size.", valueName: "seconds"))
    var warmupSeconds = 0.5

    @Option(name: [.customShort("b"), .customLong("batch")], help: ArgumentHelp("Commands per proposal.", valueName: "n"))
    var batch = 1_000

    @Option(
        name: [.customShort("p"), .customLong("payload")],
        help: ArgumentHelp("Payload sizes in bytes, comma separated.", valueName: "list"))
    var payloadList = IntList([16, 1_024])

    /// Entries a storage may retain before it is snapshotted and compacted.
    @Option(
        name: [.customShort("r"), .customLong("retain")],
        help: ArgumentHelp("Entries kept per storage before compaction.", valueName: "n"))
    var retain = 100_000

    /// Allocate every command afresh for each batch (as a real client would) instead of
    /// proposing the same preallocated commands again and again.
    @Flag(
        name: .customLong("fresh-payloads"),
        help: "Allocate each command anew for every batch (counts the client's allocations too; default: reuse one set).")
    var freshPayloads = false

    /// The payload sizes, in bytes.
    var payloads: [Int] { payloadList.values }

    func validate() throws {
        try requireSeconds(seconds, "--duration", allowZero: false)
        try requireSeconds(warmupSeconds, "--warmup", allowZero: true)
        try require(batch > 0, "--batch needs a positive integer, got '\(batch)'")
        try require(retain > 0, "--retain needs a positive integer, got '\(retain)'")
        try requireAll(payloadList, atLeast: 0, "--payload")
    }
}

// MARK: - Cluster

/// Three cores, their storages and the messages queued for each.
struct Cluster {
    var cores: [RaftCore] = []
    let storages: [MemoryLogStorage]
    /// `inboxes[i]` holds the messages for node `i + 1`.
    var inboxes: [[Message]]
    var delivering: [Message] = []
    /// Commands applied by each node.
    var appliedCommands: [Int]
    /// Payload bytes applied by each node (so applying reads the data).
    var appliedBytes: [Int]
    /// Highest index applied by each node.
    var appliedIndex: [LogIndex]
    var messagesDelivered = 0
    var snapshotsSent = 0
    var compactions = 0
    let retain: Int

    static let ids: [NodeID] = [1, 2, 3]

    /// The configuration every node uses, tuned for throughput. See README.md.
    static func configuration(id: NodeID) -> RaftConfiguration {
        var c = RaftConfiguration(id: id)
        c.maxMessageBytes = 8 << 20  // 8 MiB: a 1,000 × 1 KiB batch fits in one append
        c.maxInflightMessages = 1_024
        c.maxUncommittedBytes = 256 << 20  // 256 MiB
        c.maxCommittedBytesPerReady = 0  // unlimited: apply whatever committed in one go
        return c
    }

    init(retain: Int) throws(RaftError) {
        self.retain = retain
        storages = Cluster.ids.map { _ in MemoryLogStorage(voters: Cluster.ids) }
        for (i, id) in Cluster.ids.enumerated() {
            cores.append(try RaftCore(configuration: Cluster.configuration(id: id), storage: storages[i]))
        }
        inboxes = Cluster.ids.map { _ in [] }
        appliedCommands = Cluster.ids.map { _ in 0 }
        appliedBytes = Cluster.ids.map { _ in 0 }
        appliedIndex = Cluster.ids.map { _ in .zero }
    }

    @inline(__always) static func slot(_ id: NodeID) -> Int { Int(id.rawValue) - 1 }

    mutating func enqueue(_ messages: [Message]) {
        for m in messages {
            if case .installSnapshot = m.kind { snapshotsSent += 1 }
            inboxes[Cluster.slot(m.to)].append(m)
        }
    }

    mutating func apply(_ i: Int, _ entries: [LogEntry]) {
        guard let last = entries.last else { return }
        var commands = 0
        var bytes = 0
        // Borrow the entries in place: a `for e in entries` loop copies each entry, which
        // costs a retain and a release of its payload and would be charged to the core.
        entries.withUnsafeBufferPointer { buffer in
            for i in buffer.indices where buffer[i].kind == .command {
                commands += 1
                bytes += buffer[i].data.count
            }
        }
        appliedCommands[i] += commands
        appliedBytes[i] += bytes
        appliedIndex[i] = last.index
    }

    /// One round of the event loop: carry out every node's Ready (until it has none), then
    /// step every queued message into its target. Returns whether anything happened.
    mutating func pumpRound() throws(RaftError) -> Bool {
        var busy = false
        for i in cores.indices {
            while cores[i].hasReady {
                busy = true
                let rd = try cores[i].ready()
                // 1. Messages that may go out before the batch is durable.
                enqueue(rd.messages)
                // 2. Persist: snapshot, entries, hard state.
                let storage = storages[i]
                if let s = rd.snapshot { try storage.applySnapshot(s.inMemorySnapshot()) }
                if !rd.entries.isEmpty { try storage.append(rd.entries) }
                if let hs = rd.hardState { storage.setHardState(hs) }
                // 3. Messages that needed the batch durable.
                enqueue(rd.messagesAfterPersist)
                // 4. Apply.
                if let s = rd.snapshot { appliedIndex[i] = s.metadata.index }
                apply(i, rd.committedEntries)
                // 5. Done.
                try cores[i].advance(rd)
            }
        }
        for i in cores.indices where !inboxes[i].isEmpty {
            busy = true
            swap(&delivering, &inboxes[i])
            messagesDelivered += delivering.count
            for m in delivering { try cores[i].step(m) }
            delivering.removeAll(keepingCapacity: true)
        }
        try compactIfNeeded()
        return busy
    }

    /// Pumps until no node has anything to do.
    mutating func settle() throws(RaftError) {
        while try pumpRound() {}
    }

    /// Snapshots and compacts a storage holding more than `retain` entries, up to the index
    /// every node has applied (so no follower ever needs a snapshot sent).
    mutating func compactIfNeeded() throws(RaftError) {
        var everywhere = appliedIndex[0]
        for a in appliedIndex where a < everywhere { everywhere = a }
        for storage in storages {
            let held = storage.firstIndex().distance(to: storage.lastIndex()) + 1
            guard held > retain, everywhere >= storage.firstIndex() else { continue }
            try storage.createSnapshot(at: everywhere, data: [])
            try storage.compact(upTo: everywhere)
            compactions += 1
        }
    }

    /// Campaigns on node 1 and pumps until it leads and everything settled.
    mutating func electNode1() throws(RaftError) {
        try cores[0].campaign()
        try settle()
        guard cores[0].role == .leader else {
            throw RaftError(.notLeader, "node 1 did not win the election: it is \(cores[0].role)")
        }
    }
}

// MARK: - Run

struct Result {
    var elapsed: Duration
    var committed: Int
    var allocations: UInt64
    var frees: UInt64
    var rounds: Int
    var proposals: Int
    var rejected: Int
    var messages: Int
}

/// Proposes a batch on the leader every round for `duration`, then settles so that everything
/// proposed is committed and applied inside the measured time.
func run(
    _ cluster: inout Cluster, batch: inout [[UInt8]], payload: Int, fresh: Bool, for duration: Duration
) throws(RaftError) -> Result {
    let clock = ContinuousClock()
    let committed0 = cluster.appliedCommands[0]
    let messages0 = cluster.messagesDelivered
    var rounds = 0
    var proposals = 0
    var rejected = 0
    let allocations0 = malloc_counter_allocations()
    let frees0 = malloc_counter_frees()
    let start = clock.now
    let deadline = start + duration
    repeat {
        if fresh { batch = makeBatch(count: batch.count, payload: payload, round: rounds) }
        do {
            try cluster.cores[0].propose(commands: batch)
            proposals += 1
        } catch where error.code == .uncommittedLimitExceeded {
            rejected += 1  // backpressure: just pump
        }
        _ = try cluster.pumpRound()
        rounds += 1
    } while clock.now < deadline
    try cluster.settle()
    let elapsed = start.duration(to: clock.now)
    let allocations = malloc_counter_allocations() - allocations0
    let frees = malloc_counter_frees() - frees0
    return Result(
        elapsed: elapsed, committed: cluster.appliedCommands[0] - committed0, allocations: allocations, frees: frees,
        rounds: rounds, proposals: proposals, rejected: rejected, messages: cluster.messagesDelivered - messages0)
}

func makeBatch(count: Int, payload: Int, round: Int) -> [[UInt8]] {
    var batch: [[UInt8]] = []
    batch.reserveCapacity(count)
    for i in 0..<count { batch.append([UInt8](repeating: UInt8(truncatingIfNeeded: i &+ round), count: payload)) }
    return batch
}

/// Runs one payload size; returns (entries per second, allocations per entry).
func benchmark(payload: Int, options: Options) throws(RaftError) -> (perSecond: Double, allocationsPerEntry: Double) {
    var cluster = try Cluster(retain: options.retain)
    try cluster.electNode1()
    var batch = makeBatch(count: options.batch, payload: payload, round: 0)
    if options.warmupSeconds > 0 {
        _ = try run(&cluster, batch: &batch, payload: payload, fresh: options.freshPayloads, for: .seconds(options.warmupSeconds))
    }
    let r = try run(&cluster, batch: &batch, payload: payload, fresh: options.freshPayloads, for: .seconds(options.seconds))

    guard cluster.cores[0].role == .leader else {
        throw RaftError(.notLeader, "node 1 lost leadership during the run: it is \(cluster.cores[0].role)")
    }
    let leaderApplied = cluster.appliedCommands[0]
    for i in 1..<cluster.cores.count where cluster.appliedCommands[i] != leaderApplied {
        throw RaftError(.storage, "node \(i + 1) applied \(cluster.appliedCommands[i]) commands, the leader \(leaderApplied)")
    }

    let seconds = r.elapsed.seconds
    let perSecond = Double(r.committed) / seconds
    let perEntry = r.committed > 0 ? Double(r.allocations) / Double(r.committed) : .nan
    print("payload=\(payload)B batch=\(options.batch): \(grouped(Int(perSecond.rounded()))) entries/s, \(fixed(perEntry, 2)) allocations/entry")
    print("  elapsed \(fixed(seconds, 3)) s, \(grouped(r.committed)) entries committed, \(grouped(Int(r.allocations))) allocations, \(grouped(Int(r.frees))) frees")
    print("  \(grouped(r.rounds)) rounds, \(grouped(r.proposals)) proposals (\(grouped(r.rejected)) refused by backpressure), \(grouped(r.messages)) messages delivered, \(fixed(Double(r.allocations) / Double(max(r.rounds, 1)), 1)) allocations/round")
    print("  \(cluster.compactions) compactions, \(cluster.snapshotsSent) snapshots sent, leader log \(cluster.cores[0].firstIndex)...\(cluster.cores[0].lastIndex), commit \(cluster.cores[0].commitIndex)")
    return (perSecond, perEntry)
}

// MARK: - Formatting (no Foundation)

extension Duration {
    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}



// MARK: - Interposition check

nonisolated(unsafe) var sink: [[Int]] = []

/// Allocates one array (kept alive through a global, so it cannot be promoted to the stack)
/// and returns how many allocations the counter saw.
@inline(never)
func allocationsForOneArray(count: Int) -> UInt64 {
    sink.reserveCapacity(1)
    let before = malloc_counter_allocations()
    sink.append(Array(repeating: count, count: count))
    let after = malloc_counter_allocations()
    sink.removeAll()
    return after - before
}

@main
struct RaftCoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-core-bench",
        abstract: "Committed entries per second and allocations per entry of three in-process RaftCores (no I/O).",
        discussion: "Exits with status 3 when a target is missed. See Benchmarks/README.md.")

    @OptionGroup var options: Options

    func run() throws {
        let probe = allocationsForOneArray(count: 1_000 + CommandLine.arguments.count)
        guard probe > 0 else {
            print("raft-core-bench: the malloc interposer counted nothing: allocation figures would be meaningless")
            throw ExitCode.failure
        }
        print("malloc interposition active: creating one [Int] counted \(probe) allocation(s)")
        print("3 in-process RaftCores, in-memory transport and MemoryLogStorage; node 1 leads")
        print("duration \(fixed(options.seconds, 1)) s (after \(fixed(options.warmupSeconds, 1)) s warm-up), batch \(grouped(options.batch)), compaction above \(grouped(options.retain)) entries, \(options.freshPayloads ? "fresh payloads per batch" : "payload buffers reused across batches")")
        var missed = false
        for payload in options.payloads {
            do {
                let (perSecond, perEntry) = try benchmark(payload: payload, options: options)
                // The project's targets: >= 1,000,000 committed 16-byte entries/s with batching,
                // and < 10 allocations per committed entry.
                var verdicts: [String] = []
                if payload == 16 && options.batch > 1 {
                    let ok = perSecond >= 1_000_000
                    missed = missed || !ok
                    verdicts.append(">= 1,000,000 entries/s \(ok ? "met" : "MISSED")")
                }
                let ok = perEntry < 10
                missed = missed || !ok
                verdicts.append("< 10 allocations/entry \(ok ? "met" : "MISSED")")
                print("  targets: " + verdicts.joined(separator: ", "))
            } catch {
                print("raft-core-bench: payload=\(payload)B failed: \(error)")
                throw ExitCode.failure
            }
        }
        if missed { throw ExitCode(3) }
    }
}
