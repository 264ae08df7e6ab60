import Logging
import NIOCore
import NIOSSL
import Raft

/// The accepting side of a connection: checks the dialler's hello, answers it, then hands each
/// message to the node straight from the connection's event loop (no task in between, so a
/// message costs no thread hop before the node's inbox).
///
/// Invariant: nothing reaches the node before a hello that ``TCPTransport/refusal(of:)`` accepts
/// (and, with TLS, whose sender the dialler's certificate names), and after it only messages that ``TCPTransport/violation(_:on:)`` lets through; the first
/// frame that is not such a message, a malformed frame, or a failed TLS handshake closes the
/// connection, and nothing after it is read.
final class AcceptedConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = WireFrame
    typealias OutboundOut = WireFrame

    let transport: TCPTransport
    /// The TLS contexts of this connection, whose settings say how the dialler's certificate
    /// must name it.
    let tls: TLSContexts?
    /// The dialler's hello, once accepted.
    var hello: Hello?
    var counters: TransportMetrics.Inbound?
    var metadata: Logger.Metadata = [:]
    var timeout: Scheduled<Void>?
    /// The connection was refused or broke the protocol: it is closing, nothing more is read.
    var finished = false

    init(transport: TCPTransport, tls: TLSContexts?) {
        self.transport = transport
        self.tls = tls
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        metadata["raft.tcp.remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "unknown")"
        guard transport.register(channel) else {
            finished = true
            context.close(promise: nil)
            return
        }
        timeout = context.eventLoop.scheduleTask(in: TimeAmount(transport.configuration.handshakeTimeout)) {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return }
        let frame = unwrapInboundIn(data)
        guard let hello, let counters else {
            handshake(frame, context: context)
            return
        }
        guard case .message(let m) = frame else { return finish("closing a connection: a second hello", context: context) }
        if let why = transport.violation(m, on: hello) { return finish("closing a connection: \(why)", context: context) }
        counters.received(bytes: WireFormat.frameSize(of: m))
        transport.deliver(m)
    }

    /// The first frame: a hello the transport accepts is answered; anything else is refused.
    func handshake(_ frame: WireFrame, context: ChannelHandlerContext) {
        timeout?.cancel()
        guard case .hello(let h) = frame else { return refuse("the first frame was not a hello", context: context) }
        metadata["raft.peer"] = "\(h.sender)"
        metadata["raft.tcp.lane"] = "\(h.lane.name)"
        if let why = transport.refusal(of: h) { return refuse(why, context: context) }
        if let tls {
            let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
            if let why = CertificateNodeIdentity.refusal(
                claimed: h.sender, certificate: certificate, clusterID: transport.configuration.clusterID, policy: tls.settings.nodeIdentity)
            {
                return refuse(why, context: context)
            }
        }
        transport.accepted(context.channel, from: h.sender)
        let c = transport.configuration
        context.writeAndFlush(wrapOutboundOut(.hello(Hello(clusterID: c.clusterID, sender: c.nodeID, receiver: h.sender, lane: h.lane))), promise: nil)
        hello = h
        counters = transport.metrics.inbound(h.sender, h.lane)
        transport.logger.debug("accepted a peer's connection", metadata: metadata)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !finished else { return }
        timeout?.cancel()
        if hello == nil {
            // A failed TLS handshake (no certificate, an untrusted one, plain TCP), or bytes
            // that are not a frame: refused before anything reached the node.
            refuse(isTLSFailure(error) ? "the TLS handshake failed: \(error)" : "its first bytes were not a hello: \(error)", context: context)
        } else {
            // A malformed frame, a reset: this connection only.
            finish("closed a peer's connection: \(error)", context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        if !finished, hello == nil { refuse("the connection closed before its hello", context: context) }
        finished = true
        transport.unregister(context.channel)
        context.fireChannelInactive()
    }

    func refuse(_ why: String, context: ChannelHandlerContext) {
        transport.refuse(why, metadata)
        finished = true
        context.close(promise: nil)
    }

    func finish(_ why: String, context: ChannelHandlerContext) {
        transport.logger.info("\(why)", metadata: metadata)
        finished = true
        context.close(promise: nil)
    }
}
