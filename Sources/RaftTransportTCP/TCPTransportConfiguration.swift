import Raft

/// Where a peer listens.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// A host name or an IP address.
    public var host: String
    /// The TCP port.
    public var port: Int

    /// Creates an address.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// How a ``TCPTransport`` listens, whom it talks to, and how much it buffers.
public struct TCPTransportConfiguration: Sendable {
    /// Identifies the cluster: a peer whose hello names another cluster is refused. At most
    /// ``WireFormat/maxClusterIDBytes`` bytes of UTF-8.
    public var clusterID: String
    /// This node.
    public var nodeID: NodeID
    /// Where to listen: a host (`127.0.0.1`, `0.0.0.0`, `::`) and a port; port 0 lets the
    /// system choose one (``TCPTransport/listen()`` returns it).
    public var listenAddress: PeerAddress
    /// The other members and where they listen. Only these may connect, and only to these are
    /// messages sent; ``TCPTransport/setPeers(_:)`` changes them at run time.
    public var peers: [NodeID: PeerAddress]
    /// The largest frame sent or accepted, header included (default 16 MiB). A message that
    /// would not fit is dropped and counted; a peer that announces a larger frame is
    /// disconnected. Keep it above the node's largest message
    /// (``/Raft/RaftConfiguration/maxMessageBytes`` worth of entries, and
    /// ``/Raft/RaftNodeConfiguration/snapshotChunkBytes`` plus a few hundred bytes).
    public var maxFrameBytes: Int = WireFormat.defaultMaxFrameBytes
    /// Messages queued for one peer (per lane) while it is slow or unreachable; beyond this a
    /// new message is dropped and counted, and the node is told the peer is unreachable.
    public var maxQueuedMessages: Int = 4096
    /// Bytes (encoded size) queued for one peer per lane, with the same effect as
    /// ``maxQueuedMessages``.
    public var maxQueuedBytes: Int = 64 << 20
    /// The first delay before redialling a peer that could not be reached; it doubles with
    /// every failed attempt up to ``maxReconnectBackoff``, and each delay is drawn at random
    /// between half and all of it (jitter), so that nodes restarting together do not redial in
    /// step.
    public var reconnectBackoff: Duration = .milliseconds(50)
    /// The longest delay between two dials of one peer.
    public var maxReconnectBackoff: Duration = .seconds(2)
    /// A dial that has not connected within this time fails.
    public var connectTimeout: Duration = .seconds(2)
    /// A connection whose handshake has not completed within this time is closed, on either
    /// side.
    public var handshakeTimeout: Duration = .seconds(5)
    /// Bytes written to a connection in one write (and one flush) at most; the queue is
    /// drained in batches of up to this size.
    public var maxBatchBytes: Int = 256 << 10
    /// Mutual TLS on every connection, or `nil` (the default) for plain TCP. With TLS, a peer
    /// without a certificate signed by ``TCPTransportTLS/trustRoots`` cannot connect, and
    /// neither can a peer speaking plain TCP; see ``TCPTransportTLS``.
    public var tls: TCPTransportTLS?

    /// Creates a configuration.
    public init(clusterID: String, nodeID: NodeID, listenAddress: PeerAddress, peers: [NodeID: PeerAddress]) {
        self.clusterID = clusterID
        self.nodeID = nodeID
        self.listenAddress = listenAddress
        self.peers = peers
    }

    /// The configuration as the transport runs it, or why it cannot.
    func validated() throws(RaftError) -> TCPTransportConfiguration {
        func bad(_ why: String) -> RaftError { RaftError(.invalidConfiguration, "TCP transport of node \(nodeID): \(why)") }
        if nodeID.isNone { throw bad("the node id must not be 0") }
        if clusterID.utf8.count > WireFormat.maxClusterIDBytes {
            throw bad("the cluster id has \(clusterID.utf8.count) bytes of UTF-8, at most \(WireFormat.maxClusterIDBytes) are allowed")
        }
        if peers[nodeID] != nil { throw bad("the peers must not include the node itself") }
        if peers.keys.contains(where: \.isNone) { throw bad("a peer id must not be 0") }
        if !(WireFormat.minimumMaxFrameBytes...WireFormat.maximumMaxFrameBytes).contains(maxFrameBytes) {
            throw bad("maxFrameBytes is \(maxFrameBytes); it must be between \(WireFormat.minimumMaxFrameBytes) and \(WireFormat.maximumMaxFrameBytes)")
        }
        if maxQueuedMessages < 1 { throw bad("maxQueuedMessages must be at least 1") }
        if maxQueuedBytes < maxFrameBytes { throw bad("maxQueuedBytes (\(maxQueuedBytes)) must hold at least one frame of maxFrameBytes (\(maxFrameBytes))") }
        if maxBatchBytes < 1 { throw bad("maxBatchBytes must be at least 1") }
        if reconnectBackoff <= .zero || maxReconnectBackoff < reconnectBackoff {
            throw bad("reconnectBackoff must be positive and at most maxReconnectBackoff")
        }
        if connectTimeout <= .zero || handshakeTimeout <= .zero { throw bad("connectTimeout and handshakeTimeout must be positive") }
        if !(0...65535).contains(listenAddress.port) { throw bad("the listen port \(listenAddress.port) is not a TCP port") }
        return self
    }
}
