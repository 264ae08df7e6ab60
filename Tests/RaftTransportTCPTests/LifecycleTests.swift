import Logging
import Raft
import RaftTransportTCP
import ServiceLifecycle
import Synchronization
import Testing

/// Two bare transports (no nodes): node 1 sends, node 2 records what arrives.
@Suite(.timeLimit(.minutes(1))) struct LifecycleTests {
    static func pair() async throws -> (sender: TCPTransport, receiver: TCPTransport, delivered: Delivered) {
        let receiver = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "life", nodeID: 2, listenAddress: PeerAddress(host: loopback, port: 0), peers: [1: PeerAddress(host: loopback, port: 1)]))
        let delivered = Delivered()
        receiver.setReceiver { delivered.record($0) }
        let port = try await receiver.listen()
        let sender = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "life", nodeID: 1, listenAddress: PeerAddress(host: loopback, port: 0), peers: [2: PeerAddress(host: loopback, port: port)]))
        return (sender, receiver, delivered)
    }

    static func heartbeat(_ round: UInt64) -> Message { Message(from: 1, to: 2, term: 1, kind: .heartbeat(Heartbeat(commit: 0, round: round))) }

    /// Graceful shutdown of a ServiceGroup stops `run()`, and what was queued for a connected
    /// peer is written before the connection closes.
    @Test func gracefulShutdownFlushesAndStops() async throws {
        let (sender, receiver, delivered) = try await Self.pair()
        let receiving = Task { try await receiver.run() }
        let group = ServiceGroup(services: [sender], gracefulShutdownSignals: [], logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await group.run() }
        sender.send([Self.heartbeat(0)])
        try await eventually(.seconds(10), "the first message delivered") { delivered.all.count == 1 }
        sender.send((1...500).map { Self.heartbeat($0) })
        await group.triggerGracefulShutdown()
        try await within(.seconds(10), "the service group stopping") { try await running.value }
        try await eventually(.seconds(10), "every queued message delivered") { delivered.all.count == 501 }
        #expect(delivered.all.map { m -> UInt64 in
            if case .heartbeat(let h) = m.kind { return h.round }
            return .max
        } == Array(0...500))
        // Sent after the shutdown: dropped and counted, never delivered.
        sender.send([Self.heartbeat(999)])
        #expect(sender.statistics.droppedMessages == 1)
        #expect(sender.statistics.framesOut == 501)
        await receiver.shutdown()
        try await within(.seconds(10), "the receiver stopping") { try await receiving.value }
        #expect(delivered.all.count == 501)
    }

    /// A peer that is down: messages queue up to the bound and the rest are dropped; redials
    /// back off; once the peer listens, the queue drains to it.
    @Test func peerDownThenUp() async throws {
        // Find a free port, then leave it closed for a while.
        let probe = try TCPTransport(
            configuration: TCPTransportConfiguration(clusterID: "life", nodeID: 2, listenAddress: PeerAddress(host: loopback, port: 0), peers: [:]))
        let port = try await probe.listen()
        await probe.shutdown()
        var c = TCPTransportConfiguration(clusterID: "life", nodeID: 1, listenAddress: PeerAddress(host: loopback, port: 0), peers: [2: PeerAddress(host: loopback, port: port)])
        c.maxQueuedMessages = 100
        c.reconnectBackoff = .milliseconds(10)
        c.maxReconnectBackoff = .milliseconds(40)
        let sender = try TCPTransport(configuration: c)
        let unreachable = Mutex<[NodeID]>([])
        sender.setEventHandler(for: 1) { event in
            if case .unreachable(let peer) = event { unreachable.withLock { $0.append(peer) } }
        }
        sender.send((0..<150).map { Self.heartbeat($0) })
        #expect(sender.statistics.droppedMessages == 50)
        try await eventually(.seconds(10), "the node told the peer is unreachable") { !unreachable.withLock { $0.isEmpty } }
        try await eventually(.seconds(10), "a few redials") { sender.statistics.reconnects >= 2 }
        #expect(unreachable.withLock { $0.allSatisfy { $0 == 2 } })

        let receiver = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "life", nodeID: 2, listenAddress: PeerAddress(host: loopback, port: port), peers: [1: PeerAddress(host: loopback, port: 1)]))
        let delivered = Delivered()
        receiver.setReceiver { delivered.record($0) }
        _ = try await receiver.listen()
        let receiving = Task { try await receiver.run() }
        try await eventually(.seconds(10), "the queued messages delivered") { delivered.all.count == 100 }
        await sender.shutdown()
        await receiver.shutdown()
        try await within(.seconds(10), "the receiver stopping") { try await receiving.value }
    }
}
