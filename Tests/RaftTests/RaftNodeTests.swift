import Foundation
import Raft
import RaftTestKit
import Testing

/// A key-value state machine: commands are `key=value`; the result is the previous value.
final class KVMachine: StateMachine {
    var values: [String: String] = [:]
    var appliedCommands = 0

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        entries.map { e in
            guard e.kind == .command else { return "" }
            appliedCommands += 1
            let text = String(decoding: e.data, as: UTF8.self)
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return "" }
            let old = values[parts[0]] ?? ""
            values[parts[0]] = parts[1]
            return old
        }
    }

    func snapshot() throws -> [UInt8] {
        Array(values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n").utf8)
    }

    func restore(from data: [UInt8], metadata: SnapshotMetadata) throws {
        values = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
    }
}

/// Three nodes in one process over a `LocalTransport`, ticking on a `ManualClock`: time moves
/// only when the test says so.
final class NodeHarness: @unchecked Sendable {
    let clock = ManualClock()
    let transport = LocalTransport()
    let ids: [NodeID] = [1, 2, 3]
    var nodes: [NodeID: RaftNode<KVMachine>] = [:]
    var machines: [NodeID: KVMachine] = [:]
    var storages: [NodeID: any WritableLogStorage] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]
    let configure: (inout RaftNodeConfiguration) -> Void

    init(configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) {
        self.configure = configure
        for id in ids { storages[id] = MemoryLogStorage(voters: ids) }
    }

    func start(_ id: NodeID) throws {
        var c = RaftNodeConfiguration(id: id)
        c.raft.randomSeed = 7
        configure(&c)
        let sm = KVMachine()
        let node = try RaftNode(configuration: c, storage: storages[id]!, stateMachine: sm, transport: transport, clock: clock)
        nodes[id] = node
        machines[id] = sm
        transport.register(id, receive: { node.receive($0) }, reportSnapshot: { node.reportSnapshot(to: $0, failed: $1) })
        runs[id] = Task { try await node.run() }
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
            while clock.sleeperCount < nodes.count && spins < 10_000 {
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

    /// Proposes on the leader and ticks until the result arrives.
    func propose(_ command: String, at id: NodeID) async throws -> String {
        let node = nodes[id]!
        let t = Task { try await node.propose(Array(command.utf8)) }
        for _ in 0..<100 {
            await settle()
            if let status = try? await node.status(), status.pendingProposals == 0 { break }
            await tick()
        }
        return try await t.value
    }

    func stopAll() async { for id in ids { await stop(id) } }
}

@Suite("RaftNode")
struct RaftNodeTests {
    @Test func electsAndReplicatesWithResults() async throws {
        let h = NodeHarness()
        try h.startAll()
        let leader = try await h.electLeader()
        #expect(try await h.propose("a=1", at: leader) == "")
        #expect(try await h.propose("a=2", at: leader) == "1")
        await h.tick(3)
        for id in h.ids { #expect(h.machines[id]?.values == ["a": "2"], "node \(id)") }
        await h.stopAll()
    }

    /// Many concurrent proposals: all get their own result, batched into few appends.
    @Test func concurrentProposalsAreBatched() async throws {
        let h = NodeHarness()
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
        for id in h.ids { #expect(h.machines[id]?.values.count == 64, "node \(id)") }
        await h.stopAll()
    }

    @Test func followerRefusesWithLeaderHint() async throws {
        let h = NodeHarness()
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
        }
        await h.stopAll()
    }

    @Test func stopFailsPendingProposals() async throws {
        let h = NodeHarness()
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
        let h = NodeHarness { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
        }
        try h.startAll()
        let leader = try await h.electLeader()
        let lagging = h.ids.first { $0 != leader }!
        await h.stop(lagging)
        for k in 0..<30 { _ = try await h.propose("k\(k)=\(k)", at: leader) }
        let leaderStatus = try await h.nodes[leader]!.status()
        #expect(leaderStatus.snapshotIndex >= 20)
        #expect(h.storages[leader]!.firstIndex() > 2)
        try h.start(lagging)
        for _ in 0..<40 {
            await h.tick()
            if let s = try? await h.nodes[lagging]!.status(), s.applied >= leaderStatus.applied { break }
        }
        #expect(h.machines[lagging]?.values == h.machines[leader]?.values)
        #expect(h.machines[lagging]?.values.count == 30)
        #expect(try await h.nodes[lagging]!.status().snapshotIndex >= 20)
        await h.stopAll()
    }
}
