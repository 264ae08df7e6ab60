import Foundation
@testable import Raft
import RaftTestKit
import Synchronization
import Testing

/// `RaftNode.read` over `LocalTransport` with `FileLogStorage` and a manual clock.
@Suite("Node reads")
struct RaftNodeReadTests {
    /// A harness of three `KVMachine` nodes on file storage in `dir`.
    static func harness(in dir: TempDirectory, configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) -> NodeHarness<KVMachine> {
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView()]
        let h = NodeHarness<KVMachine>(
            make: { KVMachine(view: views[$0]!) }, configure: configure,
            openStorage: { id in try FileLogStorage(directory: "\(dir.path)/\(id)", voters: [1, 2, 3]) })
        h.views = views
        return h
    }

    /// A linearizable read sees every write that completed before it, on the leader and on a
    /// follower that missed the write: the follower asks the leader for its commit index and
    /// serves the read only once it has caught up. A stale read on that follower, before it
    /// catches up, sees its old state.
    @Test func linearizableReadsOnLeaderAndFollower() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir)
        try h.startAll()
        let leader = try await h.electLeader()
        let follower = h.ids.first { $0 != leader }!
        _ = try await h.write("k=old")
        // The follower misses the next write entirely.
        h.transport.isolate(follower, true, from: h.ids)
        _ = try await h.propose("k=new", at: leader)
        let nodeL = h.nodes[leader]!
        let nodeF = h.nodes[follower]!
        #expect(try await h.answer { try await nodeL.read { $0.values["k"] ?? "" } } == "new")
        #expect(try await nodeF.read(.stale) { $0.values["k"] ?? "" } == "old")
        h.transport.isolate(follower, false, from: h.ids)
        #expect(try await h.answer { try await nodeF.read { $0.values["k"] ?? "" } } == "new")
        #expect(h.views[follower]!.values["k"] == "new")
        #expect(h.failures.isEmpty)
        await h.stopAll()
    }

    /// A leader cut off from its quorum answers no linearizable read: the read times out with
    /// a typed error, never returning the old value, while the majority elects a new leader and
    /// overwrites it. The same read on the new leader sees the new value.
    @Test func deposedLeaderAnswersNoRead() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir) { $0.readTimeoutTicks = 8 }
        try h.startAll()
        let old = try await h.electLeader()
        _ = try await h.write("k=old")
        h.transport.isolate(old, true, from: h.ids)
        let nodeOld = h.nodes[old]!
        let stale = Task { try await nodeOld.read { $0.values["k"] ?? "" } }
        // The others elect a leader among themselves and overwrite the key.
        var newLeader: NodeID?
        for _ in 0..<80 where newLeader == nil {
            await h.tick()
            for id in h.ids where id != old {
                if let s = try? await h.nodes[id]!.status(), s.raft.role == .leader { newLeader = id }
            }
        }
        let l = try #require(newLeader)
        _ = try await h.propose("k=new", at: l)
        await #expect(throws: RaftError.self) { _ = try await stale.value }
        do {
            _ = try await stale.value
        } catch let e as RaftError {
            #expect(e.code == .timeout)
        }
        let nodeNew = h.nodes[l]!
        #expect(try await h.answer { try await nodeNew.read { $0.values["k"] ?? "" } } == "new")
        await h.stopAll()
    }

    /// Without a quorum a read fails within `readTimeoutTicks` with `.timeout` (carrying the
    /// leader hint while the node still knows one) instead of hanging.
    @Test func readTimesOutWithoutQuorum() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir) { $0.readTimeoutTicks = 5 }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v")
        for id in h.ids where id != leader { await h.stop(id) }
        let node = h.nodes[leader]!
        let read = Task { try await node.read { $0.values["k"] ?? "" } }
        await h.settle()
        await h.tick(6)
        do {
            _ = try await read.value
            Issue.record("a read without a quorum returned")
        } catch let e as RaftError {
            #expect(e.code == .timeout)
            #expect(e.leaderHint == leader)
        }
        await h.stopAll()
    }

    /// A cancelled read ends at once with `CancellationError`, without waiting for its timeout,
    /// and the node goes on serving reads.
    @Test func cancelledReadEndsAtOnce() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir) { $0.readTimeoutTicks = 1_000 }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v")
        let node = h.nodes[leader]!
        // No round can complete while the leader is cut off.
        h.transport.isolate(leader, true, from: h.ids)
        let read = Task { try await node.read { $0.values["k"] ?? "" } }
        await h.settle()
        read.cancel()
        await #expect(throws: CancellationError.self) { _ = try await read.value }
        h.transport.isolate(leader, false, from: h.ids)
        #expect(try await h.answer { try await node.read { $0.values["k"] ?? "" } } == "v")
        await h.stopAll()
    }

    /// A follower's read issued just before the leader stops is answered by the next leader,
    /// with every write the old leader acknowledged.
    @Test func followerReadSurvivesTheLeaderStopping() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir)
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v1")
        let follower = h.ids.first { $0 != leader }!
        let nodeF = h.nodes[follower]!
        // The leader never sees the request: it stops at once.
        h.transport.setLink(follower, leader, connected: false)
        let read = Task { try await nodeF.read { $0.values["k"] ?? "" } }
        await h.settle()
        await h.stop(leader)
        let value = try await h.answer { try await read.value }
        #expect(value == "v1")
        #expect(h.failures.isEmpty)
        await h.stopAll()
    }

    /// A read issued on the leader just before it stops either answers with the latest value
    /// or fails with `.stopped`; it never hangs.
    @Test func leaderReadWhenTheLeaderStops() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir)
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v1")
        let node = h.nodes[leader]!
        let read = Task { try await node.read { $0.values["k"] ?? "" } }
        await h.stop(leader)
        do {
            #expect(try await read.value == "v1")
        } catch let e as RaftError {
            #expect(e.code == .stopped)
        }
        await h.stopAll()
    }

    /// Lease reads: answered by the leader and by followers; refused with `.invalidArgument`
    /// when the lease is not configured. A query's error reaches the caller and the node goes
    /// on.
    @Test func leaseReadsAndBadRequests() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir) { $0.raft.readLease = ReadLease(maxClockDrift: 0.1) }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v")
        let follower = h.ids.first { $0 != leader }!
        let nodeL = h.nodes[leader]!
        let nodeF = h.nodes[follower]!
        #expect(try await h.answer { try await nodeL.read(.lease) { $0.values["k"] ?? "" } } == "v")
        #expect(try await h.answer { try await nodeF.read(.lease) { $0.values["k"] ?? "" } } == "v")
        struct QueryFailed: Error {}
        await #expect(throws: QueryFailed.self) {
            _ = try await h.answer { try await nodeL.read { _ -> Int in throw QueryFailed() } }
        }
        #expect(try await h.answer { try await nodeL.read { $0.values["k"] ?? "" } } == "v")
        await h.stopAll()

        let dir2 = TempDirectory()
        let plain = Self.harness(in: dir2)
        try plain.startAll()
        let l2 = try await plain.electLeader()
        let n2 = plain.nodes[l2]!
        do {
            _ = try await n2.read(.lease) { $0.values["k"] ?? "" }
            Issue.record("a lease read without a lease configured was served")
        } catch let e as RaftError {
            #expect(e.code == .invalidArgument)
        }
        await plain.stopAll()
    }

    /// Many concurrent reads on the leader share heartbeat rounds and all see the write that
    /// completed before them.
    @Test func concurrentReadsAllSeeTheWrite() async throws {
        let dir = TempDirectory()
        let h = Self.harness(in: dir)
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v")
        let node = h.nodes[leader]!
        let values = try await h.answer {
            try await withThrowingTaskGroup(of: String.self) { g in
                for _ in 0..<50 { g.addTask { try await node.read { $0.values["k"] ?? "" } } }
                var all: [String] = []
                for try await v in g { all.append(v) }
                return all
            }
        }
        #expect(values.count == 50 && values.allSatisfy { $0 == "v" })
        await h.stopAll()
    }
}
