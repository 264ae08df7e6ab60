import Foundation
import Hummingbird
import Logging
import Prometheus
import Raft
import RaftTransportTCP
import ServiceLifecycle
import Synchronization

/// One node of the key-value service: a ``Raft/RaftNode`` with the ``SQLiteStateMachine``, its
/// `TCPTransport` to the other members, and the HTTP API (``KVHTTPAPI``) in front.
///
/// ```swift
/// let node = try await KVNode(configuration: configuration, logger: logger)
/// try await node.run(handlingSignals: true)   // until SIGINT/SIGTERM, or node.shutdown()
/// ```
///
/// Its metrics (the node's, the transport's and the HTTP API's) go to a Prometheus registry of
/// its own, served at `GET /metrics`, so several nodes in one process (the tests) keep theirs
/// apart.
public final class KVNode: Sendable {
    /// This node's id.
    public let id: NodeID
    /// The Raft replica. After its disk filled up (``Raft/RaftError/Code/noSpace``) the node
    /// starts a new one on the same files once it can write again; this is always the latest.
    public var raft: RaftNode<SQLiteStateMachine> { replica.withLock { $0.node } }
    /// Why the replica is stopped while the node waits for disk space, `nil` while it runs.
    public var waitingForSpace: RaftError? { replica.withLock { $0.noSpace } }
    /// The peer transport.
    public let transport: TCPTransport
    /// The members and their addresses.
    public let directory: KVClusterDirectory
    /// The port the transport listens on (chosen by the system when configured as 0).
    public let raftPort: Int
    /// The state machine's counters.
    public let statistics: KVStatistics
    /// Where the node's metrics are collected.
    public let registry: PrometheusCollectorRegistry
    let metricsFactory: PrometheusMetricsFactory
    let configuration: KVNodeConfiguration
    let logger: Logger
    let http: Mutex<HTTPState>
    let replica: Mutex<Replica>

    struct Replica {
        var node: RaftNode<SQLiteStateMachine>
        var noSpace: RaftError?
    }

    struct HTTPState {
        var port: Int?
        var waiting: [CheckedContinuation<Int, any Error>] = []
        var group: ServiceGroup?
        var shutDown = false
        var failure: (any Error)?
    }

    /// Opens the node's storage and database and binds its transport; nothing is served until
    /// ``run(handlingSignals:)``.
    ///
    /// - Throws: ``Raft/RaftError`` for a configuration it cannot run, storage or a database it
    ///   cannot open (``Raft/RaftError/Code/corruption`` for a damaged one), or a port it cannot
    ///   bind.
    public init(configuration: KVNodeConfiguration, logger: Logger) async throws {
        let me = try configuration.validatedSelf()
        self.configuration = configuration
        self.logger = logger
        id = configuration.id
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        let metrics = PrometheusMetricsFactory(registry: registry)
        metricsFactory = metrics
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)

        var tcp = TCPTransportConfiguration(
            clusterID: configuration.clusterID, nodeID: id, listenAddress: configuration.raftListenAddress ?? me.raftAddress,
            peers: Self.peers(configuration.members, except: id))
        tcp.reconnectBackoff = .milliseconds(50)
        tcp.maxReconnectBackoff = .seconds(1)
        tcp.tls = configuration.tls
        let transport = try TCPTransport(configuration: tcp, logger: logger, metricsFactory: metrics)
        let raftPort = try await transport.listen()
        self.raftPort = raftPort
        self.transport = transport
        // With port 0 the system chose the port: the directory shows the real one.
        let nodeID = configuration.id
        var members = configuration.members.filter { $0.id != nodeID }
        members.append(KVMember(id: nodeID, raftAddress: PeerAddress(host: me.raftAddress.host, port: raftPort), httpAddress: me.httpAddress))
        let directory = KVClusterDirectory(me: nodeID, book: members, logger: logger) { peers in transport.setPeers(peers) }
        self.directory = directory

        let statistics = KVStatistics()
        self.statistics = statistics
        do {
            replica = Mutex(Replica(node: try Self.replica(configuration, metrics: metrics, statistics: statistics, transport: transport, directory: directory, logger: logger)))
        } catch {
            await transport.shutdown()
            throw error
        }
        http = Mutex(HTTPState())
        // Messages go to the replica of the moment (a new one after a full disk).
        transport.setReceiver { [weak self] message in self?.raft.receive(message) }
    }

    /// Opens the node's storage and database and makes a replica on them.
    static func replica(
        _ configuration: KVNodeConfiguration, metrics: PrometheusMetricsFactory, statistics: KVStatistics, transport: TCPTransport,
        directory: KVClusterDirectory, logger: Logger
    ) throws -> RaftNode<SQLiteStateMachine> {
        var node = configuration.node
        node.raft.id = configuration.id
        node.metricsFactory = metrics
        node.clientAddresses = Dictionary(uniqueKeysWithValues: configuration.members.compactMap { m in m.httpAddress.map { (m.id, "http://\($0)") } })
        // A new directory starts a cluster of the configured members, or, for a node that
        // joins one, no membership at all: it waits for a leader to add it.
        let founders = configuration.join ? [] : configuration.members.map(\.id)
        let storage = try FileLogStorage(directory: configuration.dataDirectory + "/raft", voters: founders)
        let machine: SQLiteStateMachine
        do { machine = try SQLiteStateMachine(path: configuration.dataDirectory + "/kv.sqlite", statistics: statistics) } catch {
            storage.close()
            throw error
        }
        return try RaftNode(configuration: node, storage: storage, stateMachine: machine, transport: KVPeerTransport(tcp: transport, directory: directory), logger: logger)
    }

    static func peers(_ members: [KVMember], except me: NodeID) -> [NodeID: PeerAddress] {
        Dictionary(uniqueKeysWithValues: members.filter { $0.id != me }.map { ($0.id, $0.raftAddress) })
    }

    /// Runs the transport, the node and the HTTP API until ``shutdown()`` (or, with
    /// `handlingSignals`, SIGINT or SIGTERM), then stops them in reverse order: HTTP first, the
    /// node (which syncs its database), the transport last.
    ///
    /// - Throws: what stopped a part early (a storage failure stops the node, and with it the
    ///   rest), or the HTTP port it could not bind.
    public func run(handlingSignals: Bool = false) async throws {
        let api = KVHTTPAPI(node: self)
        let app = Application(
            router: api.router(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.httpAddress.host, port: configuration.httpAddress.port), serverName: nil),
            onServerRunning: { [self] channel in self.serving(on: channel.localAddress?.port ?? configuration.httpAddress.port) },
            logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: transport), .init(service: KVReplicaService(node: self)), .init(service: app)],
                gracefulShutdownSignals: handlingSignals ? [.sigterm, .sigint] : [],
                logger: logger))
        let stopNow = http.withLock { s -> Bool in
            s.group = group
            return s.shutDown
        }
        if stopNow { await group.triggerGracefulShutdown() }
        do {
            try await group.run()
        } catch {
            finishWaiting(failure: error)
            throw error
        }
        finishWaiting(failure: RaftError(.stopped, "node \(id) stopped"))
    }

    /// Stops a running node the orderly way (``run(handlingSignals:)`` then returns).
    public func shutdown() async {
        let group = http.withLock { s -> ServiceGroup? in
            s.shutDown = true
            return s.group
        }
        await group?.triggerGracefulShutdown()
    }

    /// The HTTP port once the API listens (the system's choice when configured as 0).
    ///
    /// - Throws: the error that stopped the node before it listened.
    public func httpPort() async throws -> Int {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Int, any Error>) in
            let answer = http.withLock { s -> Result<Int, any Error>? in
                if let port = s.port { return .success(port) }
                if let failure = s.failure { return .failure(failure) }
                s.waiting.append(c)
                return nil
            }
            if let answer { c.resume(with: answer) }
        }
    }

    func serving(on port: Int) {
        let waiting = http.withLock { s -> [CheckedContinuation<Int, any Error>] in
            s.port = port
            defer { s.waiting = [] }
            return s.waiting
        }
        let address = PeerAddress(host: configuration.httpAddress.host, port: port)
        if var me = directory.member(id), me.httpAddress != address {
            me.httpAddress = address
            directory.update(me)
        }
        logger.info("serving HTTP", metadata: ["http.address": "\(address)"])
        for c in waiting { c.resume(returning: port) }
    }

    func finishWaiting(failure: any Error) {
        let waiting = http.withLock { s -> [CheckedContinuation<Int, any Error>] in
            if s.port == nil { s.failure = failure }
            defer { s.waiting = [] }
            return s.waiting
        }
        for c in waiting { c.resume(throwing: failure) }
    }
}
