import Foundation
import Testing

@testable import Raft

/// Membership changes through `RaftNode` (issue 8), on `FileLogStorage` over `LocalTransport`.
@Suite("RaftNode membership")
struct RaftNodeMembershipTests {
    /// A harness of nodes 1...4 on file storage: 1, 2 and 3 are bootstrapped as the voters,
    /// 4 starts with an empty directory (no membership: it waits to be added).
    static func harness(_ dir: TempDirectory, configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) -> NodeHarness<KVMachine> {
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView(), 4: KVView()]
        let h = NodeHarness<KVMachine>(
            ids: [1, 2, 3, 4], make: { KVMachine(view: views[$0]!) },
            configure: { c in
                c.snapshotEvery = 20
                c.compactionTrail = 5
                c.catchUpEntries = 10
                configure(&c)
            },
            openStorage: { id in try FileLogStorage(directory: dir.path + "/node\(id)", voters: id == 4 ? [] : [1, 2, 3]) })
        h.views = views
        return h
    }

    /// Runs `operation` while writing to the cluster, one write at a time, until the operation
    /// answers; returns its result and the longest time, in ticks, between two successful
    /// writes (or the start and the first).
    static func whileWriting<R: Sendable>(
        _ h: NodeHarness<KVMachine>, prefix: String, _ operation: @escaping @Sendable () async throws -> R
    ) async throws -> (R, longestGapTicks: Int) {
        let done = Flag()
        let task = Task {
            defer { done.set() }
            return try await operation()
        }
        var lastSuccess = h.clock.now
        var longest: Duration = .zero
        var i = 0
        while !done.isSet && i < 300 {
            i += 1
            if (try? await h.write("\(prefix)\(i)=v\(i)")) != nil {
                longest = max(longest, lastSuccess.duration(to: h.clock.now))
                lastSuccess = h.clock.now
            }
        }
        if !done.isSet { task.cancel() }
        let result = try await task.value
        return (result, Int(longest / .milliseconds(100)))
    }

    /// Issue 8's node-level test: node 3 is stopped for good; node 4 joins with an empty data
    /// directory, as a learner caught up by a snapshot (the log was compacted), and is promoted;
    /// node 3 is removed. Writes never stop succeeding for more than an election timeout, and
    /// after every node restarts the membership is {1, 2, 4}.
    @Test func replaceAFailedServer() async throws {
        let dir = TempDirectory()
        let h = Self.harness(dir)
        for id: NodeID in [1, 2, 3] { try h.start(id) }
        var leader = try await h.electLeader()
        for i in 0..<45 { _ = try await h.write("a\(i)=\(i)") }
        // Node 3 fails for good (if it led, another node takes over first).
        await h.stop(3)
        leader = try await h.electLeader()
        let snapshot = try await h.waitFor(leader) { $0.snapshotIndex >= 40 }
        #expect(snapshot.raft.firstIndex > 1, "the log was compacted, so node 4 needs a snapshot")

        try h.start(4)
        let node = h.nodes[leader]!
        let (added, gapAdding) = try await Self.whileWriting(h, prefix: "b") { try await node.addVoter(4, address: "node4:7000") }
        #expect(added.voters == [1, 2, 3, 4])
        #expect(added.addresses[4] == "node4:7000")
        let (removed, gapRemoving) = try await Self.whileWriting(h, prefix: "c") { try await node.remove(3) }
        #expect(removed == ConfState(voters: [1, 2, 4], addresses: [4: "node4:7000"]))
        #expect(gapAdding <= 10 && gapRemoving <= 10, "writes stalled for \(max(gapAdding, gapRemoving)) ticks")

        // Node 4 holds every write, restored from a snapshot and then the log.
        _ = try await h.write("last=1")
        let target = try await node.status().applied
        let status4 = try await h.waitFor(4) { $0.applied >= target }
        #expect(status4.raft.membership.voters == [1, 2, 4])
        #expect(h.views[4]!.values == h.views[leader]!.values)
        #expect(h.views[4]!.values["a0"] == "0" && h.views[4]!.values["last"] == "1")
        #expect(h.views[4]!.restores >= 1)

        // Every node restarts from its files: the membership survives.
        for id: NodeID in [1, 2, 4] { await h.stop(id) }
        for id: NodeID in [1, 2, 4] { try h.start(id) }
        leader = try await h.electLeader()
        #expect(leader != 3)
        _ = try await h.write("after=restart")
        for id: NodeID in [1, 2, 4] {
            let s = try await h.nodes[id]!.status()
            #expect(s.raft.membership == ConfState(voters: [1, 2, 4], addresses: [4: "node4:7000"]), "node \(id)")
        }
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// Bad requests get typed errors, and nothing changes.
    @Test func badRequestsAreRefused() async throws {
        let dir = TempDirectory()
        let h = Self.harness(dir)
        for id: NodeID in [1, 2, 3] { try h.start(id) }
        let leader = try await h.electLeader()
        _ = try await h.write("x=1")
        let follower = [NodeID(1), 2, 3].first { $0 != leader }!
        func code(_ at: NodeID, _ op: @escaping @Sendable (RaftNode<KVMachine>) async throws -> Void) async -> RaftError? {
            let node = h.nodes[at]!
            do {
                try await h.answer { try await op(node) }
                return nil
            } catch let e as RaftError { return e } catch { return nil }
        }
        let onFollower = await code(follower) { try await $0.addLearner(4) }
        #expect(onFollower?.code == .notLeader)
        #expect(onFollower?.leaderHint == leader)
        #expect(await code(leader) { try await $0.addVoter(2) }?.code == .invalidArgument)
        #expect(await code(leader) { try await $0.remove(9) }?.code == .unknownPeer)
        #expect(await code(leader) { try await $0.promote(2) }?.code == .invalidArgument)
        #expect(await code(leader) { try await $0.addLearner(0) }?.code == .invalidArgument)
        #expect(await code(leader) { try await $0.changeMembership([.addVoter(4, address: ""), .addLearner(4, address: "")]) }?.code == .invalidArgument)
        #expect(await code(leader) { try await $0.transferLeadership(to: leader) }?.code == .invalidArgument)
        #expect(await code(leader) { try await $0.transferLeadership(to: 9) }?.code == .unknownPeer)
        let s = try await h.nodes[leader]!.status()
        #expect(s.raft.membership == ConfState(voters: [1, 2, 3]))
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// A leadership transfer returns once the target leads; the old leader then refuses
    /// proposals with the new leader's id.
    @Test func transferLeadership() async throws {
        let dir = TempDirectory()
        let h = Self.harness(dir)
        for id: NodeID in [1, 2, 3] { try h.start(id) }
        let leader = try await h.electLeader()
        _ = try await h.write("x=1")
        let target = [NodeID(1), 2, 3].first { $0 != leader }!
        let node = h.nodes[leader]!
        try await h.answer { try await node.transferLeadership(to: target) }
        #expect(await h.leader() == target)
        let refused = await #expect(throws: RaftError.self) { _ = try await h.propose("y=2", at: leader) }
        #expect(refused?.code == .notLeader)
        #expect(refused?.leaderHint == target)
        _ = try await h.write("z=3")
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }
}
