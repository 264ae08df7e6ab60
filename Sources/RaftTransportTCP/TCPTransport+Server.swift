import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Raft
import ServiceLifecycle

extension TCPTransport {
    /// Starts listening (if it is not already) and returns the port it listens on: the one
    /// configured, or the one the system chose for port 0. Connections are accepted once
    /// ``run()`` runs.
    ///
    /// - Throws: the system's error when the address cannot be bound, or
    ///   ``/Raft/RaftError/Code/stopped`` after ``shutdown()``.
    @discardableResult
    public func listen() async throws -> Int {
        if let port = state.withLock({ $0.server?.channel.localAddress?.port }) { return port }
        let c = configuration
        let tls = tls
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: c.listenAddress.host, port: c.listenAddress.port) { channel in
                channel.eventLoop.makeCompletedFuture { [self] () -> any Channel in
                    // The contexts current now; a reload later does not change this connection's.
                    let contexts = tls?.contexts
                    if let contexts { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: contexts.server)) }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder(maxFrameBytes: c.maxFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireFrameEncoder(maxFrameBytes: c.maxFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(AcceptedConnectionHandler(transport: self, tls: contexts))
                    return channel
                }
            }
        let (kept, stopped) = state.withLock { s -> (NIOAsyncChannel<any Channel, Never>?, Bool) in
            if s.shutDown { return (nil, true) }
            if s.server == nil { s.server = server }
            return (s.server, false)
        }
        if stopped || kept?.channel !== server.channel { server.channel.close(promise: nil) }
        if stopped { throw RaftError(.stopped, "TCP transport of node \(c.nodeID) is shut down") }
        guard let port = kept?.channel.localAddress?.port else {
            throw RaftError(.io, "TCP transport of node \(c.nodeID): the listening socket has no port")
        }
        logger.info("listening", metadata: ["raft.tcp.address": "\(c.listenAddress.host):\(port)"])
        return port
    }

    /// The port the transport listens on, once ``listen()`` returned.
    public var listeningPort: Int? { state.withLock { $0.server?.channel.localAddress?.port } }

    /// Accepts connections until graceful shutdown, task cancellation or ``shutdown()``; each
    /// connection is served by a task of its own, and an error on one closes that one only.
    /// Then flushes what is queued for every peer and closes every connection.
    public func run() async throws {
        _ = try await listen()
        guard let server = state.withLock({ $0.server }) else { return }
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                }
            } onCancel: {
                self.stopAccepting()
            }
        } onGracefulShutdown: {
            self.stopAccepting()
        }
        await closeLinks()
    }

    /// Stops the transport: no more connections are accepted, what is queued is flushed (for at
    /// most a second), and every connection closes. ``run()`` then returns. Messages sent
    /// afterwards are dropped.
    public func shutdown() async {
        stopAccepting()
        await closeLinks()
    }

    /// Closes the listening socket and every accepted connection; refuses new links.
    func stopAccepting() {
        let (server, accepted) = state.withLock { s -> ((any Channel)?, [any Channel]) in
            s.shutDown = true
            let accepted = s.accepted.values.map(\.channel)
            s.accepted = [:]
            return (s.server?.channel, accepted)
        }
        server?.close(promise: nil)
        for c in accepted { c.close(promise: nil) }
    }

    /// Flushes and closes every outbound connection.
    func closeLinks() async {
        let links = state.withLock { s -> [PeerLink] in
            s.shutDown = true
            let links = Array(s.links.values)
            s.links = [:]
            return links
        }
        for link in links {
            if let closed = link.flushAndClose(within: .seconds(1)) { try? await closed.get() }
        }
    }

    /// Serves one accepted connection: its ``AcceptedConnectionHandler`` checks the handshake
    /// and delivers its messages from the event loop; this task only lasts as long as the
    /// connection, so that ``run()`` returns once every connection is closed. Never throws.
    func serve(_ channel: any Channel) async {
        try? await channel.closeFuture.get()
    }

    /// Records an accepted connection, so shutdown (and the removal of its peer) closes it;
    /// `false` once the transport is shut down.
    func register(_ channel: any Channel) -> Bool {
        state.withLock { s in
            if s.shutDown { return false }
            s.accepted[ObjectIdentifier(channel)] = AcceptedConnection(channel: channel)
            return true
        }
    }

    /// The connection's hello named `peer`, and was accepted.
    func accepted(_ channel: any Channel, from peer: NodeID) {
        state.withLock { $0.accepted[ObjectIdentifier(channel)]?.peer = peer }
    }

    func unregister(_ channel: any Channel) {
        _ = state.withLock { $0.accepted.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func refuse(_ why: String, _ metadata: Logger.Metadata) {
        metrics.refused()
        logger.info("refused a connection: \(why)", metadata: metadata)
    }

    /// Why an accepted connection's hello is refused, or `nil` if the peer may talk.
    func refusal(of hello: Hello) -> String? {
        if hello.clusterID != configuration.clusterID {
            return "the peer belongs to cluster \"\(hello.clusterID)\", not \"\(configuration.clusterID)\""
        }
        if hello.sender == configuration.nodeID { return "the peer claims this node's own id \(hello.sender)" }
        if !state.withLock({ $0.peers[hello.sender] != nil }) { return "node \(hello.sender) is not a configured member" }
        if hello.receiver != configuration.nodeID { return "the peer meant to reach node \(hello.receiver), not this node" }
        if hello.version < WireFormat.minimumPeerVersion {
            return "the peer speaks format version \(hello.version) only, and this node version \(WireFormat.version): run the same library version on every node"
        }
        return nil
    }

    /// Why a message on a connection breaks the handshake's terms, or `nil` if it is fine.
    func violation(_ m: Message, on hello: Hello) -> String? {
        if m.from != hello.sender { return "a message from node \(m.from) on node \(hello.sender)'s connection" }
        if m.to != configuration.nodeID { return "a message for node \(m.to)" }
        let chunk: Bool
        if case .snapshotChunk = m.kind { chunk = true } else { chunk = false }
        if chunk != (hello.lane == .snapshots) { return "a \(WireFormat.FrameKind(m.kind)) message on the \(hello.lane.name) lane" }
        return nil
    }
}
