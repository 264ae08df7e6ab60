import Foundation
import Logging
import Synchronization
import Raft
import ServiceLifecycle
import RaftTestKit
import Testing

/// A key-value state machine: commands are `key=value`; the result is the previous value.
final class KVMachine: StateMachine {
    var values: [String: String] = [:]
    var appliedCommands = 0
    var restores = 0
    /// Where the test looks: the node owns the machine.
    let view: KVView

    init(view: KVView = KVView()) {
        self.view = view
        view.publish(self)
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        defer { view.publish(self) }
        return entries.filter { $0.kind == .command }.map { e in
            appliedCommands += 1
            let text = String(decoding: e.data, as: UTF8.self)
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return "" }
            let old = values[parts[0]] ?? ""
            values[parts[0]] = parts[1]
            return old
        }
    }

    func prepareSnapshot() throws -> [String: String] { values }

    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws {
        try output.write(encodeKV(context))
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        values = decodeKV(try input.readAll())
        restores += 1
        view.publish(self)
    }
}

/// What a test sees of a ``KVMachine`` it handed to a node (as `sending`, so the test cannot
/// keep the machine itself): the machine publishes a copy of its state here after every change.
final class KVView: Sendable {
    struct State: Sendable {
        var values: [String: String] = [:]
        var appliedCommands = 0
        var restores = 0
    }

    private let state = Mutex(State())

    var values: [String: String] { state.withLock { $0.values } }
    var appliedCommands: Int { state.withLock { $0.appliedCommands } }
    /// Snapshots the current machine restored from.
    var restores: Int { state.withLock { $0.restores } }

    func publish(_ m: KVMachine) {
        let s = State(values: m.values, appliedCommands: m.appliedCommands, restores: m.restores)
        state.withLock { $0 = s }
    }
}

/// `key=value` lines, sorted by key.
func encodeKV(_ values: [String: String]) -> [UInt8] {
    Array(values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n").utf8)
}

func decodeKV(_ data: [UInt8]) -> [String: String] {
    var values: [String: String] = [:]
    for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
        let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
        if parts.count == 2 { values[parts[0]] = parts[1] }
    }
    return values
}

/// Three nodes in one process over a `LocalTransport`, ticking on a `ManualClock`: time moves
/// only when the test says so.
///
/// `@unchecked Sendable`: a test drives its harness from one task at a time (the node tasks it
/// starts touch only `ended`, which locks). A `MemoryLogStorage` kept in `storages` is handed to
/// one node at a time: ``start(_:)`` refuses a node that runs, and ``stop(_:)`` waits until its
/// loop has ended before the storage is handed to the next one.
final class NodeHarness<SM: StateMachine>: @unchecked Sendable where SM.Result == String {
    let clock = ManualClock()
    let transport = LocalTransport()
    let ids: [NodeID]
    var nodes: [NodeID: RaftNode<SM>] = [:]
    /// What the tests see of ``KVMachine``s (set by the `KVMachine` convenience initializer):
    /// the node owns each machine.
    var views: [NodeID: KVView] = [:]
    var storages: [NodeID: any WritableLogStorage] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]
    /// Errors any node's run loop ended with (a clean stop is not one), and the nodes whose
    /// loop ended.
    let ended = RunRecord()
    var failures: [String] { ended.withLock { $0.failures } }
    let configure: (inout RaftNodeConfiguration) -> Void
    let make: (NodeID) -> SM

    /// Opens a node's storage at each start; `nil` keeps one `MemoryLogStorage` per node.
    let openStorage: ((NodeID) throws -> any WritableLogStorage)?

    init(
        ids: [NodeID] = [1, 2, 3], make: @escaping (NodeID) -> SM, configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in },
        openStorage: ((NodeID) throws -> any WritableLogStorage)? = nil
    ) {
        self.ids = ids
        self.make = make
        self.configure = configure
        self.openStorage = openStorage
        if openStorage == nil {
            for id in ids { storages[id] = MemoryLogStorage(voters: ids) }
        }
    }

    func start(_ id: NodeID) throws {
        // Two loops over one storage would be a data race (and two nodes with one id).
        if nodes[id] != nil { throw RaftError(.invalidConfiguration, "node \(id) is already running; stop it first") }
        var c = RaftNodeConfiguration(id: id)
        c.raft.randomSeed = 7
        configure(&c)
        let node: RaftNode<SM>
        if let openStorage {
            node = try RaftNode(configuration: c, storage: try openStorage(id), stateMachine: make(id), transport: transport, clock: clock)
        } else {
            node = try RaftNode(configuration: c, storage: storages[id]!, stateMachine: make(id), transport: transport, clock: clock)
        }
        nodes[id] = node
        transport.register(id, receive: { node.receive($0) })
        ended.withLock { _ = $0.dead.remove(id) }
        runs[id] = Task { [ended] in
            do {
                try await node.run()
                ended.withLock { _ = $0.dead.insert(id) }
            } catch {
                ended.withLock {
                    $0.failures.append("node \(id): \(error)")
                    $0.dead.insert(id)
                }
                throw error
            }
        }
    }

    func startAll() throws { for id in ids { try start(id) } }

    func stop(_ id: NodeID) async {
        transport.unregister(id)
        nodes[id]?.stop()
        _ = await runs[id]?.result
        nodes[id] = nil
        runs[id] = nil
    }

    /// Lets every running node handle what is queued (and what that causes), a few rounds.
    func settle() async {
        for _ in 0..<4 {
            for id in ids { _ = try? await nodes[id]?.status() }
        }
    }

    /// Advances the clock one tick at a time, waiting each time until every ticker is asleep
    /// again (so every tick was posted) and the cluster settled.
    func tick(_ n: Int = 1) async {
        for _ in 0..<n {
            clock.advance(by: .milliseconds(100))
            var spins = 0
            let alive = nodes.count - ended.withLock { d in nodes.keys.filter { d.dead.contains($0) }.count }
            while clock.sleeperCount < alive && spins < 10_000 {
                await Task.yield()
                spins += 1
            }
            await settle()
        }
    }

    func leader() async -> NodeID? {
        var found: [NodeID] = []
        for id in ids {
            if let s = try? await nodes[id]?.status(), s.raft.role == .leader { found.append(id) }
        }
        return found.count == 1 ? found[0] : nil
    }

    func electLeader() async throws -> NodeID {
        for _ in 0..<60 {
            if let l = await leader() { return l }
            await tick()
        }
        throw RaftError(.timeout, "no leader after 60 ticks")
    }

    /// Proposes on the leader and ticks until the answer arrives (a result or an error: a
    /// proposal the cluster cannot commit times out after `proposalTimeoutTicks`).
    ///
    /// Ticks stop only once the answer is there: the node's status cannot tell, since the
    /// proposing task may not have posted its proposal yet when the status is taken, and a
    /// proposal waiting on a crashed follower is answered only by ticks (its timeout). A node
    /// that still has not answered after 200 ticks gets the proposal cancelled, so the write
    /// fails instead of the test waiting forever.
    func propose(_ command: String, at id: NodeID) async throws -> String {
        let node = nodes[id]!
        return try await answer { try await node.propose(Array(command.utf8)) }
    }

    /// Runs `operation` (a proposal, a read) and ticks until it answers, as ``propose(_:at:)``
    /// does; cancels it after 200 ticks.
    func answer<R: Sendable>(_ operation: @escaping @Sendable () async throws -> R) async throws -> R {
        try await answerWhileTicking(settle: settle, tick: { await self.tick() }, operation)
    }

    func stopAll() async { for id in ids { await stop(id) } }

    /// Waits until `node`'s status satisfies `condition` (snapshots are saved on their own
    /// thread, so a recorded snapshot can lag the apply that triggered it). Bounded: gives up
    /// after 5,000 rounds of status requests and returns the last status.
    @discardableResult
    func waitFor(_ node: NodeID, _ condition: (NodeStatus) -> Bool) async throws -> NodeStatus {
        var status = try await nodes[node]!.status()
        for _ in 0..<5_000 where !condition(status) {
            await settle()
            status = try await nodes[node]!.status()
        }
        return status
    }

    /// Starts the cluster, elects a leader and stops one follower (it misses what follows).
    func startWithOneFollowerStopped() async throws -> (leader: NodeID, stopped: NodeID) {
        try startAll()
        let leader = try await electLeader()
        let stopped = ids.first { $0 != leader }!
        await stop(stopped)
        return (leader, stopped)
    }

    /// Restarts every node whose loop ended on an error containing `marker` (an injected
    /// crash), and forgets those errors. Returns the nodes restarted.
    @discardableResult
    func restartCrashed(marker: String) async throws -> [NodeID] {
        let crashed = ended.withLock { r -> [NodeID] in
            let ids = r.dead.filter { id in r.failures.contains { $0.hasPrefix("node \(id):") && $0.contains(marker) } }
            r.failures.removeAll { $0.contains(marker) }
            return ids.sorted()
        }
        for id in crashed {
            await stop(id)
            try start(id)
        }
        return crashed
    }

    /// Proposes on whichever node leads now (electing one if needed), retrying a lost proposal.
    func write(_ command: String) async throws -> String {
        var lastError: (any Error)?
        for _ in 0..<5 {
            if !failures.isEmpty { throw RaftError(.stopped, "a node failed: \(failures)") }
            let l = try await electLeader()
            do { return try await propose(command, at: l) } catch {
                lastError = error
                await tick()
            }
        }
        throw lastError!
    }
}

extension NodeHarness where SM == KVMachine {
    convenience init(configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) {
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView()]
        self.init(make: { KVMachine(view: views[$0]!) }, configure: configure)
        self.views = views
    }
}

/// How the nodes' run loops ended, shared with their tasks.
/// A flag one task sets and others read.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

/// `@unchecked Sendable`: every access to `state` holds `lock`.
final class RunRecord: @unchecked Sendable {
    private let lock = NSLock()
    private var state: (failures: [String], dead: Set<NodeID>) = ([], [])

    func withLock<T>(_ body: (inout (failures: [String], dead: Set<NodeID>)) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }
}

/// The durable part of an on-disk key-value state machine: survives a node's restart. The test
/// reads it while the node writes it, so every access locks.
final class KVDisk: Sendable {
    private let state = Mutex<(values: [String: String], applied: LogIndex, restoresFromSnapshot: Int)>(([:], .zero, 0))
    private let failing = Atomic<Bool>(false)
    /// Makes ``DiskKV/openState()`` throw, as a database that cannot be opened.
    var failOpen: Bool {
        get { failing.load(ordering: .relaxed) }
        set { failing.store(newValue, ordering: .relaxed) }
    }

    var values: [String: String] {
        get { state.withLock { $0.values } }
        set { state.withLock { $0.values = newValue } }
    }
    var applied: LogIndex {
        get { state.withLock { $0.applied } }
        set { state.withLock { $0.applied = newValue } }
    }
    var restoresFromSnapshot: Int { state.withLock { $0.restoresFromSnapshot } }

    /// Commits the values and the applied index together, as one transaction.
    func commit(_ values: [String: String], applied: LogIndex) { state.withLock { $0.values = values; $0.applied = applied } }
    func countRestore() { state.withLock { $0.restoresFromSnapshot += 1 } }
}

/// A key-value state machine whose every batch is committed to its "disk" together with its
/// applied index, as a database transaction would.
final class DiskKV: OnDiskStateMachine {
    let disk: KVDisk
    var values: [String: String] = [:]
    var appliedIndex: LogIndex = .zero

    init(disk: KVDisk) { self.disk = disk }

    func openState() throws -> LogIndex {
        if disk.failOpen { throw RaftError(.io, "the database cannot be opened") }
        values = disk.values
        appliedIndex = disk.applied
        return appliedIndex
    }

    func syncState() throws { disk.commit(values, applied: appliedIndex) }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        var out: [String] = []
        for e in entries {
            if e.index <= appliedIndex { throw RaftError(.stateMachine, "entry \(e.index) applied twice (holding \(appliedIndex))") }
            appliedIndex = e.index
            guard e.kind == .command else { continue }
            var result = ""
            let parts = String(decoding: e.data, as: UTF8.self).split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 {
                result = values[parts[0]] ?? ""
                values[parts[0]] = parts[1]
            }
            out.append(result)
        }
        try syncState()
        return out
    }

    func prepareSnapshot() throws -> [String: String] { values }

    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws {
        try output.write(encodeKV(context))
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        if metadata.index <= appliedIndex {
            throw RaftError(.stateMachine, "recover snapshot moving applied index backwards, \(appliedIndex), \(metadata.index)")
        }
        values = decodeKV(try input.readAll())
        appliedIndex = metadata.index
        disk.countRestore()
        try syncState()
    }
}

@Suite("RaftNode")
struct RaftNodeTests {
    @Test func electsAndReplicatesWithResults() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        #expect(try await h.propose("a=1", at: leader) == "")
        #expect(try await h.propose("a=2", at: leader) == "1")
        await h.tick(3)
        for id in h.ids { #expect(h.views[id]?.values == ["a": "2"], "node \(id)") }
        await h.stopAll()
    }

    /// Many concurrent proposals: all get their own result, batched into few appends.
    @Test func concurrentProposalsAreBatched() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        let node = h.nodes[leader]!
        let results = Task {
            try await withThrowingTaskGroup(of: (Int, String).self) { g in
                for k in 0..<64 { g.addTask { (k, try await node.propose(Array("k\(k)=v\(k)".utf8))) } }
                var out: [Int: String] = [:]
                for try await (k, r) in g { out[k] = r }
                return out
            }
        }
        for _ in 0..<50 {
            await h.settle()
            if let s = try? await node.status(), s.pendingProposals == 0, s.applied >= 65 { break }
            await h.tick()
        }
        let out = try await results.value
        #expect(out.count == 64)
        #expect(out.values.allSatisfy { $0 == "" })
        await h.tick(2)
        for id in h.ids { #expect(h.views[id]?.values.count == 64, "node \(id)") }
        await h.stopAll()
    }

    @Test func followerRefusesWithLeaderHint() async throws {
        let h = NodeHarness<KVMachine> { c in c.clientAddresses = [1: "http://127.0.0.1:8001", 2: "http://127.0.0.1:8002", 3: "http://127.0.0.1:8003"] }
        try h.startAll()
        let leader = try await h.electLeader()
        await h.tick(2)
        let follower = h.ids.first { $0 != leader }!
        do {
            _ = try await h.nodes[follower]!.propose(Array("x=1".utf8))
            Issue.record("a follower accepted a proposal")
        } catch let e as RaftError {
            #expect(e.code == .notLeader)
            #expect(e.leaderHint == leader)
            #expect(e.leaderAddress == "http://127.0.0.1:800\(leader)")
        }
        await h.stopAll()
    }

    @Test func stopFailsPendingProposals() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        // Cut the leader off so nothing commits, then stop it.
        h.transport.isolate(leader, true, from: h.ids)
        let node = h.nodes[leader]!
        let t = Task { try await node.propose(Array("y=1".utf8)) }
        await h.settle()
        await h.stop(leader)
        do {
            _ = try await t.value
            Issue.record("a proposal on a stopped node succeeded")
        } catch let e as RaftError {
            #expect(e.code == .stopped)
        }
        do {
            _ = try await node.propose(Array("z=1".utf8))
            Issue.record("a stopped node accepted a proposal")
        } catch let e as RaftError {
            #expect(e.code == .stopped)
        }
        await h.stopAll()
    }

    /// A node stopped while the others commit and compact past it comes back, catches up by
    /// snapshot, and holds the same data.
    @Test func laggingNodeCatchesUpBySnapshot() async throws {
        let h = NodeHarness<KVMachine> { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
        }
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        for k in 0..<30 { _ = try await h.propose("k\(k)=\(k)", at: leader) }
        let leaderStatus = try await h.waitFor(leader) { $0.snapshotIndex >= 20 && $0.raft.firstIndex > 2 }
        #expect(leaderStatus.snapshotIndex >= 20)
        #expect(leaderStatus.raft.firstIndex > 2)
        try h.start(lagging)
        for _ in 0..<40 {
            await h.tick()
            if let s = try? await h.nodes[lagging]!.status(), s.applied >= leaderStatus.applied { break }
        }
        #expect(h.views[lagging]?.values == h.views[leader]?.values)
        #expect(h.views[lagging]?.values.count == 30)
        #expect(try await h.nodes[lagging]!.status().snapshotIndex >= 20)
        await h.stopAll()
    }

    /// The field failure this library exists to prevent: an on-disk state machine under
    /// continuous proposals, snapshots every 200 entries; node 2 is stopped while the others
    /// compact past it, restarted (catching up by snapshot) and restarted again at once, several
    /// times, once while it is receiving the snapshot, while a client keeps proposing. No error
    /// anywhere; at the end all three hold the same data and applied index, and every
    /// acknowledged write is in it. (The state machine throws "recover snapshot moving applied
    /// index backwards" if it is ever asked to load a snapshot at or below what it holds, and
    /// refuses entries applied twice.)
    @Test func onDiskStateMachineRestartedRepeatedlyWhileCatchingUp() async throws {
        let disks: [NodeID: KVDisk] = [1: KVDisk(), 2: KVDisk(), 3: KVDisk()]
        let h = NodeHarness<DiskKV>(make: { DiskKV(disk: disks[$0]!) }) { c in
            c.snapshotEvery = 200
            c.compactionTrail = 20
            c.snapshotChunkBytes = 256
        }
        try h.startAll()
        var acknowledged: [String: String] = [:]
        var k = 0
        func write(_ n: Int) async throws {
            for _ in 0..<n {
                _ = try await h.write("k\(k)=v\(k)")
                acknowledged["k\(k)"] = "v\(k)"
                k += 1
            }
        }
        try await write(30)
        let firstLeader = try await h.electLeader()
        let lagging = h.ids.first { $0 != firstLeader }!
        await h.stop(lagging)
        try await write(450)
        let leader = try await h.electLeader()
        let compacted = try await h.waitFor(leader) { $0.raft.firstIndex > disks[lagging]!.applied + 1 }
        #expect(compacted.raft.firstIndex > disks[lagging]!.applied + 1, "the others compacted past the stopped node")
        // A client proposing continuously while the node restarts.
        let client = Task { [node = h.nodes[leader]!] in
            var acked: [String: String] = [:]
            for i in 0..<3_000 where !Task.isCancelled {
                do {
                    _ = try await node.propose(Array("c\(i)=\(i)".utf8))
                    acked["c\(i)"] = "\(i)"
                } catch {
                    break
                }
            }
            return acked
        }
        for cycle in 0..<4 {
            try h.start(lagging)
            if cycle == 1 {
                // Restart while the snapshot is on its way: one heartbeat round, then stop.
                await h.tick()
            }
            await h.stop(lagging)
            try h.start(lagging)
            await h.tick(3)
            try await write(10)
            if cycle < 3 { await h.stop(lagging) }
        }
        client.cancel()
        for (key, value) in await client.value { acknowledged[key] = value }
        for _ in 0..<60 {
            await h.tick()
            let target = try await h.nodes[leader]!.status().applied
            if disks.values.allSatisfy({ $0.applied == target }) { break }
        }
        let final = disks[leader]!
        #expect(h.failures.isEmpty, "\(h.failures)")
        for id in h.ids {
            #expect(disks[id]!.applied == final.applied, "node \(id) applied \(disks[id]!.applied), leader \(final.applied)")
            #expect(disks[id]!.values == final.values, "node \(id)")
        }
        #expect(acknowledged.count > 520, "the client's proposals were acknowledged too")
        for (key, value) in acknowledged { #expect(final.values[key] == value, "acknowledged \(key) missing") }
        #expect(disks[lagging]!.restoresFromSnapshot >= 1, "the lagging node caught up by snapshot")
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// A manual snapshot request snapshots everything applied and compacts behind it.
    @Test func manualSnapshot() async throws {
        let h = NodeHarness<KVMachine> { c in
            c.snapshotEvery = 0
            c.compactionTrail = 1
        }
        try h.startAll()
        let leader = try await h.electLeader()
        for k in 0..<5 { _ = try await h.propose("m\(k)=\(k)", at: leader) }
        let at = try await h.nodes[leader]!.snapshot()
        let status = try await h.nodes[leader]!.status()
        #expect(at == status.applied)
        #expect(status.snapshotIndex == status.applied)
        #expect(status.raft.firstIndex == status.applied)  // one entry of trail kept
        #expect(try await h.nodes[leader]!.snapshot() == nil, "nothing new to snapshot")
        await h.stopAll()
    }

    /// As a `ServiceLifecycle.Service`, a node stops on graceful shutdown and fails what is
    /// still waiting with `stopped`.
    @Test func stopsOnGracefulShutdown() async throws {
        let storage = MemoryLogStorage(voters: [1])
        let clock = ManualClock()
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: storage, stateMachine: KVMachine(), transport: LocalTransport(),
            clock: clock)
        let group = ServiceGroup(services: [node], logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await group.run() }
        var leader = false
        for _ in 0..<200 where !leader {
            clock.advance(by: .milliseconds(100))
            for _ in 0..<20 { await Task.yield() }
            leader = (try? await node.status())?.raft.role == .leader
        }
        #expect(leader)
        #expect(try await node.propose(Array("s=1".utf8)) == "")
        await group.triggerGracefulShutdown()
        try await running.value
        do {
            _ = try await node.propose(Array("s=2".utf8))
            Issue.record("a stopped node accepted a proposal")
        } catch let e as RaftError {
            #expect(e.code == .stopped)
        }
    }
}
