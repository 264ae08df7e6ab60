import Metrics
import Raft
import Synchronization

/// The metrics a ``TCPTransport`` exports through swift-metrics, dimensioned by node, and per
/// peer and lane where they concern one connection.
///
/// - `raft_tcp_bytes_out_total`, `raft_tcp_frames_out_total`: written to a peer;
/// - `raft_tcp_bytes_in_total`, `raft_tcp_frames_in_total`: received from a peer (after its
///   handshake);
/// - `raft_tcp_dropped_messages_total`: messages to a peer dropped (its queue was full, the
///   message was larger than the frame limit, or the peer is not configured);
/// - `raft_tcp_reconnects_total`: dials of a peer after its connection failed or broke;
/// - `raft_tcp_refused_handshakes_total`: connections refused (another cluster, not a member,
///   a malformed or missing hello), by this node as the accepting or the dialling side.
struct TransportMetrics: Sendable {
    let factory: any MetricsFactory
    let node: String
    let refusedCounter: Counter
    let totals = TransportTotals()

    init(node: NodeID, factory: any MetricsFactory) {
        self.factory = factory
        self.node = node.description
        refusedCounter = Counter(label: "raft_tcp_refused_handshakes_total", dimensions: [("node", node.description)], factory: factory)
    }

    func dimensions(_ peer: NodeID, _ lane: Hello.Lane) -> [(String, String)] {
        [("node", node), ("peer", peer.description), ("lane", lane.name)]
    }

    /// A connection was refused at its handshake.
    func refused() {
        refusedCounter.increment()
        totals.refusedHandshakes.add(1, ordering: .relaxed)
    }

    /// The counters of the connection to `peer` on `lane`.
    func outbound(_ peer: NodeID, _ lane: Hello.Lane) -> Outbound {
        let d = dimensions(peer, lane)
        return Outbound(
            bytes: Counter(label: "raft_tcp_bytes_out_total", dimensions: d, factory: factory),
            frames: Counter(label: "raft_tcp_frames_out_total", dimensions: d, factory: factory),
            drops: Counter(label: "raft_tcp_dropped_messages_total", dimensions: d, factory: factory),
            reconnects: Counter(label: "raft_tcp_reconnects_total", dimensions: d, factory: factory), totals: totals)
    }

    /// The counters of a connection from `peer` on `lane`.
    func inbound(_ peer: NodeID, _ lane: Hello.Lane) -> Inbound {
        let d = dimensions(peer, lane)
        return Inbound(
            bytes: Counter(label: "raft_tcp_bytes_in_total", dimensions: d, factory: factory),
            frames: Counter(label: "raft_tcp_frames_in_total", dimensions: d, factory: factory), totals: totals)
    }

    struct Outbound: Sendable {
        let bytes: Counter
        let frames: Counter
        let drops: Counter
        let reconnects: Counter
        let totals: TransportTotals

        func sent(frames n: Int, bytes b: Int) {
            frames.increment(by: Int64(n))
            bytes.increment(by: Int64(b))
            totals.framesOut.add(Int64(n), ordering: .relaxed)
            totals.bytesOut.add(Int64(b), ordering: .relaxed)
        }

        func dropped(_ n: Int) {
            drops.increment(by: Int64(n))
            totals.droppedMessages.add(Int64(n), ordering: .relaxed)
        }

        func reconnected() {
            reconnects.increment()
            totals.reconnects.add(1, ordering: .relaxed)
        }
    }

    struct Inbound: Sendable {
        let bytes: Counter
        let frames: Counter
        let totals: TransportTotals

        func received(bytes b: Int) {
            frames.increment()
            bytes.increment(by: Int64(b))
            totals.framesIn.add(1, ordering: .relaxed)
            totals.bytesIn.add(Int64(b), ordering: .relaxed)
        }
    }
}

/// The transport's totals over all peers, kept beside the metrics so that a program can read
/// them without a metrics backend (``TCPTransport/statistics``).
final class TransportTotals: Sendable {
    let bytesOut = Atomic<Int64>(0)
    let framesOut = Atomic<Int64>(0)
    let bytesIn = Atomic<Int64>(0)
    let framesIn = Atomic<Int64>(0)
    let droppedMessages = Atomic<Int64>(0)
    let reconnects = Atomic<Int64>(0)
    let refusedHandshakes = Atomic<Int64>(0)

    var snapshot: TCPTransportStatistics {
        TCPTransportStatistics(
            bytesOut: bytesOut.load(ordering: .relaxed), framesOut: framesOut.load(ordering: .relaxed), bytesIn: bytesIn.load(ordering: .relaxed),
            framesIn: framesIn.load(ordering: .relaxed), droppedMessages: droppedMessages.load(ordering: .relaxed),
            reconnects: reconnects.load(ordering: .relaxed), refusedHandshakes: refusedHandshakes.load(ordering: .relaxed))
    }
}

/// What a ``TCPTransport`` has done since it was created, over all peers and lanes: the same
/// counts it exports as metrics.
public struct TCPTransportStatistics: Sendable, Hashable {
    /// Bytes written to peers (frames, headers included).
    public var bytesOut: Int64
    /// Frames written to peers.
    public var framesOut: Int64
    /// Bytes of messages received from peers after their handshake.
    public var bytesIn: Int64
    /// Messages received from peers.
    public var framesIn: Int64
    /// Messages dropped: a full queue, a message over the frame limit, or not a peer.
    public var droppedMessages: Int64
    /// Dials after a failed dial or a broken connection.
    public var reconnects: Int64
    /// Connections refused at the handshake, accepted or dialled.
    public var refusedHandshakes: Int64
}

extension Hello.Lane {
    /// The lane's name in metrics and logs.
    var name: String {
        switch self {
        case .messages: return "messages"
        case .snapshots: return "snapshots"
        }
    }
}
