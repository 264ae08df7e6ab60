import Dispatch
import Foundation
import Synchronization
import MetricsTestKit
import RaftTestKit
import Testing

@_spi(Testing) @testable import Raft

/// A key-value state machine whose snapshot saving waits at a gate the test opens, so the test
/// can hold a save in progress and watch what the node does meanwhile. The gate travels in the
/// snapshot context: the save is static and sees nothing else.
final class GatedKV: StateMachine {
    struct Context: Sendable {
        var values: [String: String]
        var gate: Gate
    }

    let inner = KVMachine()
    let gate: Gate

    init(gate: Gate) { self.gate = gate }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] { try inner.apply(entries) }
    func prepareSnapshot() throws -> Context { Context(values: inner.values, gate: gate) }

    static func saveSnapshot(_ context: Context, to output: SnapshotOutput) throws {
        let gate = context.gate
        gate.saving.add(1, ordering: .sequentiallyConsistent)
        gate.started.signal()
        // Bounded, so a failing test cannot hang the node's shutdown.
        _ = gate.semaphore.wait(timeout: .now() + 10)
        let data = encodeKV(context.values)
        gate.saved.withLock { $0.append((output.metadata.index, data)) }
        try output.write(data)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        try inner.recoverSnapshot(from: input, metadata: metadata)
    }
}

final class Gate: Sendable {
    let semaphore = DispatchSemaphore(value: 0)
    let saving = Atomic<Int>(0)
    let started = DispatchSemaphore(value: 0)
    /// What each save wrote, in order: the snapshot's index and its data.
    let saved = Mutex<[(LogIndex, [UInt8])]>([])

    /// Waits (off the cooperative pool, at most 10 s) until a save has started.
    func waitForSave() async -> Bool {
        await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: self.started.wait(timeout: .now() + 10) == .success) }
        }
    }
    /// Lets `saves` saves through.
    func open(_ saves: Int = 64) { for _ in 0..<saves { semaphore.signal() } }
}

@Suite("RaftNode snapshots")
struct RaftNodeSnapshotTests {
    /// Step two of a snapshot (saving) runs beside apply: while a save is held at the gate, the
    /// leader keeps committing and applying; the snapshot, once released, holds exactly the
    /// state at its own index (the context was taken at that point in time).
    @Test func snapshotIsSavedBesideApply() async throws {
        // One gate per node: the followers' saves must not be mistaken for the leader's.
        let gates: [NodeID: Gate] = [1: Gate(), 2: Gate(), 3: Gate()]
        let h = NodeHarness<GatedKV>(make: { GatedKV(gate: gates[$0]!) }) { c in
            c.snapshotEvery = 5
            c.compactionTrail = 1
        }
        defer { for g in gates.values { g.open() } }
        try h.startAll()
        let leader = try await h.electLeader()
        let gate = gates[leader]!
        for (id, g) in gates where id != leader { g.open() }
        for k in 0..<5 { _ = try await h.propose("a\(k)=\(k)", at: leader) }
        await h.tick()
        #expect(await gate.waitForSave(), "a save started")
        let held = try await h.nodes[leader]!.status()
        #expect(held.snapshotIndex == .zero, "nothing is recorded while the save is held")
        // The loop is not blocked by the save: these commit and apply.
        for k in 0..<20 { _ = try await h.propose("b\(k)=\(k)", at: leader) }
        let during = try await h.nodes[leader]!.status()
        #expect(during.applied >= held.applied + 20)
        #expect(during.snapshotIndex == .zero)
        gate.open(1)  // only the held save: a later one waits, so the latest snapshot is this one
        let after = try await h.waitFor(leader) { $0.snapshotIndex > .zero }
        #expect(after.snapshotIndex > .zero && after.snapshotIndex <= held.applied, "the snapshot is the held one")
        let first = try #require(gate.saved.withLock { $0.first })
        #expect(first.0 == after.snapshotIndex)
        let saved = decodeKV(first.1)
        // Index 1 is the leader's no-op; every later entry up to the snapshot set one "a" key.
        #expect(saved.count == Int(first.0.rawValue) - 1, "the state at the snapshot's index: \(saved)")
        #expect(saved.keys.filter { $0.hasPrefix("b") }.isEmpty, "entries applied during the save are not in it")
        for g in gates.values { g.open() }
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// A follower behind the compacted log receives the snapshot in small chunks while the
    /// leader goes on committing and applying proposals. Acknowledgements are lost for a while
    /// (the transfer stalls and is resent from the last acknowledged byte), then the transfer
    /// completes and the follower holds the same data.
    @Test func proposalsCommitWhileSnapshotStreams() async throws {
        let h = NodeHarness<KVMachine> { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
            c.snapshotChunkBytes = 16
            c.snapshotChunksInFlight = 2
            c.snapshotRetryTicks = 2
            c.snapshotMaxRetries = 1_000
        }
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        for k in 0..<30 { _ = try await h.propose("key\(k)=value\(k)", at: leader) }
        let compacted = try await h.waitFor(leader) { $0.raft.firstIndex > 2 }
        #expect(compacted.raft.firstIndex > 2, "the leader compacted past the stopped node")
        // Lose every acknowledgement of a chunk: the transfer cannot finish.
        let ackFilter = Atomic<Bool>(true)
        let chunksSent = Atomic<Int>(0)
        h.transport.setDropFilter { m in
            if case .snapshotChunk = m.kind { chunksSent.add(1, ordering: .relaxed) }
            if case .snapshotChunkAck = m.kind { return ackFilter.load(ordering: .relaxed) }
            return false
        }
        try h.start(lagging)
        await h.tick(3)
        let streaming = try await h.nodes[leader]!.status()
        #expect(streaming.raft.members.first { $0.id == lagging }?.state == .snapshot, "a transfer is in progress")
        #expect(chunksSent.load(ordering: .relaxed) > 0)
        // The leader keeps serving meanwhile.
        for k in 30..<50 { _ = try await h.propose("key\(k)=value\(k)", at: leader) }
        let during = try await h.nodes[leader]!.status()
        #expect(during.applied >= streaming.applied + 20)
        #expect(during.raft.members.first { $0.id == lagging }?.state == .snapshot, "still streaming")
        #expect(try await h.nodes[lagging]!.status().applied < streaming.snapshotIndex, "the follower has not got it yet")
        ackFilter.store(false, ordering: .relaxed)
        for _ in 0..<60 {
            await h.tick()
            if let s = try? await h.nodes[lagging]!.status(), s.applied >= during.applied { break }
        }
        #expect(h.views[lagging]!.values == h.views[leader]!.values)
        #expect(h.views[lagging]!.values.count == 50)
        #expect(h.views[lagging]!.restores >= 1, "caught up by snapshot")
        let chunks = chunksSent.load(ordering: .relaxed)
        #expect(chunks > 10, "sent in chunks, \(chunks) of them")
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// Crash points around snapshots, each followed by a restart that must recover: three
    /// nodes with file storage and an on-disk state machine; a follower is stopped while the
    /// others snapshot and compact past it, then brought back to catch up by snapshot. The
    /// crash is injected once, at one point, on whichever node reaches it first; that node is
    /// restarted from its files. At the end every node holds the same data and applied index
    /// and every acknowledged write.
    @Test(arguments: NodeCrashPoint.allCases)
    func crashAroundSnapshotsRecovers(at point: NodeCrashPoint) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-crashpoint-\(point)-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let disks: [NodeID: KVDisk] = [1: KVDisk(), 2: KVDisk(), 3: KVDisk()]
        let fired = Atomic<Bool>(false)
        let firedOn = Mutex<NodeID?>(nil)
        let marker = "injected crash"
        let h = NodeHarness<DiskKV>(
            make: { DiskKV(disk: disks[$0]!) },
            configure: { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
            c.snapshotChunkBytes = 64
            c.crashHook = { id, p in
                guard p == point, fired.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return false }
                firedOn.withLock { $0 = id }
                return true
            }
        }, openStorage: { id in try FileLogStorage(directory: "\(root)/\(id)", voters: [1, 2, 3]) })
        try h.startAll()
        var acknowledged: [String: String] = [:]
        var k = 0
        func writeCount(_ n: Int) async throws {
            for _ in 0..<n {
                var done = false
                for _ in 0..<20 where !done {
                    do {
                        _ = try await h.write("c\(k)=v\(k)")
                        acknowledged["c\(k)"] = "v\(k)"
                        done = true
                    } catch {
                        try await h.restartCrashed(marker: marker)
                        await h.tick()
                    }
                }
                #expect(done, "write c\(k) never succeeded: \(h.failures)")
                k += 1
            }
        }
        try await writeCount(5)
        let lagging = try await h.electLeader() == 3 ? NodeID(2) : NodeID(3)
        await h.stop(lagging)
        try await writeCount(40)
        try await h.restartCrashed(marker: marker)
        try h.start(lagging)
        for _ in 0..<80 {
            await h.tick()
            try await h.restartCrashed(marker: marker)
            guard let l = await h.leader(), let target = try? await h.nodes[l]!.status().applied else { continue }
            if disks[lagging]!.applied >= target { break }
        }
        try await writeCount(5)
        for _ in 0..<60 {
            await h.tick()
            try await h.restartCrashed(marker: marker)
            guard let l = await h.leader(), let target = try? await h.nodes[l]!.status().applied else { continue }
            if disks.values.allSatisfy({ $0.applied == target }) { break }
        }
        let reached = fired.load(ordering: .sequentiallyConsistent)
        #expect(reached, "the crash at \(point) was reached")
        let crashed = firedOn.withLock { $0 }
        #expect(crashed != nil)
        #expect(h.failures.isEmpty, "\(h.failures)")
        let reference = disks[1]!
        for id in h.ids {
            #expect(disks[id]!.applied == reference.applied, "node \(id) applied \(disks[id]!.applied), node 1 \(reference.applied)")
            #expect(disks[id]!.values == reference.values, "node \(id)")
        }
        for (key, value) in acknowledged { #expect(reference.values[key] == value, "acknowledged \(key) missing after a crash at \(point)") }
        #expect(disks[lagging]!.restoresFromSnapshot >= 1, "the lagging node caught up by snapshot")
        await h.stopAll()
    }

    /// The applied-index rules at start, through a real node: a log of ten committed entries
    /// with a snapshot at `snapshot`, and a state machine holding `held` (on disk) or nothing
    /// (in memory). The snapshot is loaded only if it moves the state machine forward; at
    /// exactly the held index it is adopted without reloading; entries the state machine holds
    /// are never passed again (the on-disk machine throws if they are). Both kinds end at 10.
    @Test(arguments: [
        (snapshot: 4, held: 6, onDisk: true, restores: 0),
        (snapshot: 6, held: 6, onDisk: true, restores: 0),
        (snapshot: 8, held: 6, onDisk: true, restores: 1),
        (snapshot: 6, held: 0, onDisk: false, restores: 1),
    ])
    func appliedIndexRulesAtStart(snapshot: UInt64, held: UInt64, onDisk: Bool, restores: Int) async throws {
        func state(through index: UInt64) -> [String: String] {
            Dictionary(uniqueKeysWithValues: (1...max(1, index)).filter { $0 <= index }.map { ("k\($0)", "v\($0)") })
        }
        let storage = MemoryLogStorage(voters: [1])
        try storage.append((1...10).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: Array("k\($0)=v\($0)".utf8)) })
        storage.setHardState(HardState(term: 1, vote: 1, commit: 10))
        try storage.createSnapshot(at: LogIndex(rawValue: snapshot), data: encodeKV(state(through: snapshot)))
        try storage.compact(upTo: LogIndex(rawValue: snapshot))
        let final: [String: String]
        let restored: Int
        let applied: LogIndex
        if onDisk {
            let disk = KVDisk()
            disk.values = state(through: held)
            disk.applied = LogIndex(rawValue: held)
            applied = try await runUntilApplied(storage: storage, machine: DiskKV(disk: disk))
            (final, restored) = (disk.values, disk.restoresFromSnapshot)
        } else {
            let view = KVView()
            applied = try await runUntilApplied(storage: storage, machine: KVMachine(view: view))
            (final, restored) = (view.values, view.restores)
        }
        #expect(applied == 10)
        #expect(restored == restores)
        #expect(final == state(through: 10))
    }

    /// Starts a single node, waits until it applied everything committed, stops it.
    func runUntilApplied<SM: StateMachine>(storage: sending MemoryLogStorage, machine: sending SM) async throws -> LogIndex {
        var c = RaftNodeConfiguration(id: 1)
        c.snapshotEvery = 0
        let node = try RaftNode(configuration: c, storage: storage, stateMachine: machine, transport: LocalTransport(), clock: ManualClock())
        let run = Task { try await node.run() }
        var applied = LogIndex.zero
        for _ in 0..<100 {
            applied = try await node.status().applied
            if applied >= 10 { break }
        }
        node.stop()
        try await run.value
        return applied
    }
}

/// The metrics a node exports, through an injected factory.
@Suite("RaftNode metrics")
struct RaftNodeMetricsTests {
    @Test func nodeExportsItsMetrics() async throws {
        let metrics = TestMetrics()
        let h = NodeHarness<KVMachine> { c in
            c.metricsFactory = metrics
            c.snapshotEvery = 0
            c.compactionTrail = 1
        }
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        for k in 0..<3 { _ = try await h.propose("m\(k)=\(k)", at: leader) }
        _ = try await h.nodes[leader]!.snapshot()
        try h.start(lagging)
        await h.tick(5)
        // A message for another node is dropped and counted.
        h.nodes[leader]!.receive(Message(from: 2, to: 99, term: 1, kind: .heartbeat(Heartbeat(commit: .zero))))
        await h.tick()
        let d = [("node", leader.description)]
        #expect(try metrics.expectCounter("raft_leader_changes_total", d).totalValue >= 1)
        #expect(try metrics.expectTimer("raft_proposal_latency", d).values.count == 3)
        #expect(try !metrics.expectTimer("raft_fsync_latency", d).values.isEmpty)
        #expect(try metrics.expectCounter("raft_snapshots_taken_total", d).totalValue == 1)
        #expect(try metrics.expectCounter("raft_snapshots_sent_total", d).totalValue >= 1)
        #expect(try metrics.expectCounter("raft_snapshots_installed_total", [("node", lagging.description)]).totalValue == 1)
        #expect(try metrics.expectCounter("raft_dropped_messages_total", d).totalValue == 1)
        let status = try await h.nodes[leader]!.status()
        #expect(try metrics.expectGauge("raft_commit_index", d).lastValue == Double(status.raft.commit.rawValue))
        #expect(try metrics.expectGauge("raft_applied_index", d).lastValue == Double(status.applied.rawValue))
        #expect(try metrics.expectGauge("raft_term", d).lastValue == Double(status.raft.term.rawValue))
        await h.stopAll()
    }
}
