import Raft
import Synchronization
import Testing

/// A `LocalTransport` that also keeps the event handler each node registers, so a test can
/// report as a real transport would.
final class ReportingTransport: RaftTransport {
    let local = LocalTransport()
    let handlers = Mutex<[NodeID: @Sendable (TransportEvent) -> Void]>([:])

    func send(_ messages: [Message]) { local.send(messages) }

    func setEventHandler(for node: NodeID, _ handler: (@Sendable (TransportEvent) -> Void)?) {
        handlers.withLock { $0[node] = handler }
    }

    func report(_ event: TransportEvent, to node: NodeID) {
        handlers.withLock { $0[node] }?(event)
    }
}

/// The node's side of transport feedback: a reported unreachable follower is probed.
@Suite(.timeLimit(.minutes(1))) struct TransportEventTests {
    @Test func unreachableFollowerIsMovedToProbing() async throws {
        let ids: [NodeID] = [1, 2, 3]
        let transport = ReportingTransport()
        var nodes: [NodeID: RaftNode<KVMachine>] = [:]
        var runs: [Task<Void, any Error>] = []
        for id in ids {
            var c = RaftNodeConfiguration(id: id)
            c.tickInterval = .milliseconds(10)
            // No election by timeout while the test runs (10 s): the follower whose link is cut
            // must not campaign, so the leader stays the leader. Node 1 is asked to campaign.
            c.raft.electionTicks = 1000
            let node = try RaftNode(configuration: c, storage: MemoryLogStorage(voters: ids), stateMachine: KVMachine(), transport: transport)
            transport.local.register(id, receive: { node.receive($0) })
            nodes[id] = node
            runs.append(Task { try await node.run() })
        }
        defer { for n in nodes.values { n.stop() } }
        // Every node registered its handler when it was created.
        #expect(transport.handlers.withLock { Set($0.keys) } == Set(ids))

        func state(of follower: NodeID, on leader: NodeID) async -> ReplicationState? {
            try? await nodes[leader]!.status().raft.members.first(where: { $0.id == follower })?.state
        }
        #expect(try await nodes[1]!.campaign())
        var leader: NodeID?
        for _ in 0..<1000 where leader == nil {
            if (try? await nodes[1]!.status().raft.role) == .leader { leader = 1 }
            try await Task.sleep(for: .milliseconds(5))
        }
        let l = try #require(leader)
        _ = try await nodes[l]!.propose(Array("k=v".utf8))
        let f = ids.first { $0 != l }!
        for _ in 0..<1000 where await state(of: f, on: l) != .replicate { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await state(of: f, on: l) == .replicate)

        // The follower stops answering: without a report the leader would go on streaming.
        transport.local.setLink(l, f, connected: false)
        try await Task.sleep(for: .milliseconds(50))
        #expect(await state(of: f, on: l) == .replicate)
        // Reports the core ignores: the node itself, a non-member, a report to a follower.
        transport.report(.unreachable(l), to: l)
        transport.report(.unreachable(9), to: l)
        transport.report(.unreachable(l), to: f)
        transport.report(.unreachable(f), to: l)
        for _ in 0..<1000 where await state(of: f, on: l) != .probe { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await state(of: f, on: l) == .probe)

        // Reconnected, it answers the probe and is streamed to again.
        transport.local.setLink(l, f, connected: true)
        for _ in 0..<1000 where await state(of: f, on: l) != .replicate { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await state(of: f, on: l) == .replicate)
        for n in nodes.values { n.stop() }
        for r in runs { _ = await r.result }
    }
}
