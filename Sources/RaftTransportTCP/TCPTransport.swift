import Logging
import Metrics
import NIOCore
import NIOPosix
import Raft
import ServiceLifecycle
import Synchronization

/// A ``/Raft/RaftTransport`` over TCP: hand it the peers' addresses, and a cluster runs across
/// machines.
///
/// ```swift
/// var tcp = TCPTransportConfiguration(
///     clusterID: "orders", nodeID: 1, listenAddress: PeerAddress(host: "0.0.0.0", port: 7001),
///     peers: [2: PeerAddress(host: "10.0.0.2", port: 7001), 3: PeerAddress(host: "10.0.0.3", port: 7001)])
/// let transport = try TCPTransport(configuration: tcp, logger: logger)
/// let node = try RaftNode(configuration: config, storage: storage, stateMachine: machine, transport: transport)
/// transport.setReceiver { node.receive($0) }
/// // Run both, e.g. in one ServiceGroup: ServiceGroup(services: [transport, node], ...).
/// ```
///
/// What it does, in the words of <doc:WireFormatSpecification>:
/// - it listens on ``TCPTransportConfiguration/listenAddress`` and accepts connections from the
///   configured peers only, after a handshake naming the cluster and the node; a stranger (another
///   cluster, a node that is not a member, bytes that are not frames) is refused, logged and
///   counted, and nothing it sends reaches the node;
/// - it dials each peer it sends to, one connection per peer for messages and one for snapshot
///   chunks, and redials with exponential backoff and jitter when a connection fails;
/// - it queues messages per peer up to ``TCPTransportConfiguration/maxQueuedMessages`` and
///   ``TCPTransportConfiguration/maxQueuedBytes``, writes many frames per write and flush, drops
///   (and counts) what does not fit, and reports an unreachable peer to the node
///   (``/Raft/TransportEvent/unreachable(_:)``), so memory stays bounded when a peer is slow or down;
/// - every frame is checked (magic, version, kind, length against the frame limit before any
///   allocation, CRC-32C): a bad one closes its own connection only;
/// - with ``TCPTransportConfiguration/tls`` set, every connection runs mutual TLS, and a peer
///   without a certificate signed by the cluster's authority (or without TLS) is refused
///   during the TLS handshake, a peer whose certificate does not name the node it claims right
///   after it; ``reloadTLS(_:)`` rotates certificates while the node runs: see <doc:MutualTLS>.
///
/// It is a `ServiceLifecycle.Service`: ``run()`` accepts connections until graceful shutdown
/// (or ``shutdown()``), then flushes what is queued and closes every connection. It logs
/// through the `Logger` you pass (info and below) and exports metrics through swift-metrics,
/// dimensioned by `node` (and `peer` and `lane` where they concern one connection):
/// `raft_tcp_bytes_out_total`, `raft_tcp_frames_out_total`, `raft_tcp_bytes_in_total`,
/// `raft_tcp_frames_in_total`, `raft_tcp_dropped_messages_total` (queue full, larger than the
/// frame limit, or not a peer), `raft_tcp_reconnects_total` and
/// `raft_tcp_refused_handshakes_total`.
public final class TCPTransport: RaftTransport, Service, Sendable {
    struct State {
        var receiver: (@Sendable (Message) -> Void)?
        var events: (@Sendable (TransportEvent) -> Void)?
        var peers: [NodeID: PeerAddress]
        var links: [LinkKey: PeerLink] = [:]
        var server: NIOAsyncChannel<any Channel, Never>?
        /// Accepted connections (with the peer once its handshake passed), closed on shutdown,
        /// and a peer's when it is removed.
        var accepted: [ObjectIdentifier: AcceptedConnection] = [:]
        var shutDown = false
    }

    struct AcceptedConnection {
        let channel: any Channel
        var peer: NodeID?
    }

    struct LinkKey: Hashable {
        let peer: NodeID
        let lane: Hello.Lane
    }

    /// The configuration the transport runs with.
    public let configuration: TCPTransportConfiguration
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: TransportMetrics
    /// The TLS contexts new connections use, when ``TCPTransportConfiguration/tls`` is set;
    /// ``reloadTLS(_:)`` replaces them.
    let tls: ReloadableTLS?
    let state: Mutex<State>

    /// Creates a transport; nothing listens or dials until ``listen()``, ``run()`` or the first
    /// message.
    ///
    /// - Parameters:
    ///   - configuration: who this node is, where it listens, its peers and its limits.
    ///   - eventLoopGroup: where connections run; the process-wide NIO group by default.
    ///   - logger: where the transport logs (info and below); silent by default.
    ///   - metricsFactory: where its metrics go; `nil` uses the process-wide `MetricsSystem`.
    /// - Throws: ``/Raft/RaftError/Code/invalidConfiguration`` for a configuration it cannot run,
    ///   TLS certificates or a key that cannot be loaded among them.
    public init(
        configuration: TCPTransportConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "swift-raft.tcp", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: (any MetricsFactory)? = nil
    ) throws(RaftError) {
        self.configuration = try configuration.validated()
        group = eventLoopGroup
        var l = logger
        l[metadataKey: "raft.node"] = "\(configuration.nodeID)"
        self.logger = l
        metrics = TransportMetrics(node: configuration.nodeID, factory: metricsFactory ?? MetricsSystem.factory)
        tls = try configuration.tls.map { tls throws(RaftError) in ReloadableTLS(try TLSContexts(tls, node: configuration.nodeID)) }
        state = Mutex(State(peers: configuration.peers))
    }

    /// Where inbound messages go: call it with the node's ``/Raft/RaftNode/receive(_:)`` before
    /// the cluster starts. Messages that arrive before a receiver is set are dropped.
    public func setReceiver(_ receive: @escaping @Sendable (Message) -> Void) {
        state.withLock { $0.receiver = receive }
    }

    public func setEventHandler(for node: NodeID, _ handler: (@Sendable (TransportEvent) -> Void)?) {
        guard node == configuration.nodeID else { return }
        state.withLock { $0.events = handler }
    }

    /// Totals since the transport was created: bytes and frames in and out, drops, reconnects
    /// and refused handshakes, over all peers.
    public var statistics: TCPTransportStatistics { metrics.totals.snapshot }

    /// The peers and their addresses now.
    public var peers: [NodeID: PeerAddress] { state.withLock { $0.peers } }

    /// Replaces the peers: a removed peer's connections close (and it may no longer connect), a
    /// new one is dialled when the node first sends to it, and one whose address changed is
    /// redialled there. A peer equal to this node is ignored.
    public func setPeers(_ peers: [NodeID: PeerAddress]) {
        let (closing, dropping) = state.withLock { s -> ([PeerLink], [any Channel]) in
            s.peers = peers.filter { $0.key != configuration.nodeID && !$0.key.isNone }
            let gone = s.links.filter { s.peers[$0.key.peer] != $0.value.address }
            for key in gone.keys { s.links[key] = nil }
            // A removed peer's inbound connections close too: it is no longer a member.
            let removed = s.accepted.values.filter { c in c.peer.map { s.peers[$0] == nil } ?? false }.map(\.channel)
            return (Array(gone.values), removed)
        }
        for link in closing { link.close() }
        for channel in dropping { channel.close(promise: nil) }
    }

    public func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        // Grouped per link, so each link's lock is taken once per call.
        var groups: [LinkKey: [Message]] = [:]
        for m in messages {
            let lane: Hello.Lane
            if case .snapshotChunk = m.kind { lane = .snapshots } else { lane = .messages }
            groups[LinkKey(peer: m.to, lane: lane), default: []].append(m)
        }
        for (key, batch) in groups {
            guard let link = link(for: key) else {
                // Not a peer (or the transport is shut down): counted as a drop.
                metrics.outbound(key.peer, key.lane).dropped(batch.count)
                logger.debug("dropped messages to a node that is not a peer", metadata: ["raft.peer": "\(key.peer)"])
                continue
            }
            link.enqueue(batch)
        }
    }

    /// The link to a peer on a lane, made on first use; `nil` for a node that is not a peer.
    func link(for key: LinkKey) -> PeerLink? {
        state.withLock { s -> PeerLink? in
            if let l = s.links[key] { return l }
            guard !s.shutDown, let address = s.peers[key.peer] else { return nil }
            let l = PeerLink(peer: key.peer, lane: key.lane, address: address, context: linkContext)
            s.links[key] = l
            return l
        }
    }

    var linkContext: LinkContext {
        LinkContext(
            configuration: configuration, group: group, logger: logger, metrics: metrics, tls: tls,
            reportUnreachable: { [weak self] peer in self?.report(.unreachable(peer)) })
    }

    func report(_ event: TransportEvent) {
        state.withLock { $0.events }?(event)
    }

    func deliver(_ message: Message) {
        guard let receiver = state.withLock({ $0.receiver }) else {
            logger.debug("dropped a message: no receiver is set", metadata: ["raft.peer": "\(message.from)"])
            return
        }
        receiver(message)
    }
}
