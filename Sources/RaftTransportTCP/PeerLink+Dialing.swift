import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Raft

extension PeerLink {
    /// Dials the peer. The handshake completes in ``DialerHandler``, which calls
    /// ``established(_:)``; a failure at any step calls ``lost(_:reason:)``.
    func connect() {
        let c = configuration
        // The contexts current now; a reload later does not change this connection's.
        let tls = context.tls?.contexts
        let bootstrap = ClientBootstrap(group: context.group)
            .connectTimeout(TimeAmount(c.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(low: c.maxBatchBytes, high: 2 * c.maxBatchBytes))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    // The hello is written at once; TLS holds it back until its handshake is done.
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls.client, serverHostname: nil)) }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder(maxFrameBytes: c.maxFrameBytes)))
                    try channel.pipeline.syncOperations.addHandler(DialerHandler(link: self, tls: tls))
                }
            }
        bootstrap.connect(host: address.host, port: address.port).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                // Closed meanwhile: the new connection is not wanted.
                if state.withLock({ if case .closed = $0.phase { return true } else { return false } }) {
                    channel.close(promise: nil)
                }
            case .failure(let error):
                lost(nil, reason: "dial failed: \(error)")
            }
        }
    }

    /// The hello this node sends to the peer.
    var hello: Hello {
        Hello(clusterID: configuration.clusterID, sender: configuration.nodeID, receiver: peer, lane: lane)
    }

    /// Why the peer's answer to the handshake is refused, or `nil` if it is the right peer.
    func refusal(of answer: Hello) -> String? {
        if answer.clusterID != configuration.clusterID { return "it belongs to cluster \"\(answer.clusterID)\", not \"\(configuration.clusterID)\"" }
        if answer.sender != peer { return "it is node \(answer.sender), not node \(peer)" }
        if answer.receiver != configuration.nodeID { return "it answered node \(answer.receiver), not this node" }
        if answer.lane != lane { return "it answered on lane \(answer.lane.name), not \(lane.name)" }
        if answer.version < WireFormat.minimumPeerVersion {
            return "it speaks format version \(answer.version) only, and this node version \(WireFormat.version): run the same library version on every node"
        }
        return nil
    }

    /// The handshake completed on `channel`: messages may flow.
    func established(_ channel: any Channel) {
        let (keep, startDrain, failures) = state.withLock { s -> (Bool, Bool, Int) in
            if case .closed = s.phase { return (false, false, 0) }
            let failures = s.failures
            s.phase = .connected(channel)
            s.failures = 0
            let start = !s.draining && !s.queue.isEmpty
            if start { s.draining = true }
            return (true, start, failures)
        }
        guard keep else {
            channel.close(promise: nil)
            return
        }
        let level: Logger.Level = failures > 0 ? .info : .debug
        context.logger.log(level: level, "connected to a peer", metadata: logMetadata.merging(["raft.tcp.failed_dials": "\(failures)"]) { $1 })
        if startDrain { drain(channel) }
    }

    /// The dial failed or the connection (`channel`, if it was established) broke: schedules a
    /// redial after the backoff and tells the node the peer is unreachable.
    func lost(_ channel: (any Channel)?, reason: String) {
        let delay = state.withLock { s -> Duration? in
            switch s.phase {
            case .connected(let c):
                // A connection that is not the current one ended: nothing changes.
                guard let channel, c === channel else { return nil }
            case .connecting:
                break
            case .idle, .waiting, .closed:
                return nil
            }
            s.phase = .waiting
            s.draining = false
            s.failures += 1
            return Self.backoff(after: s.failures, configuration: configuration, using: &s.rng)
        }
        guard let delay else { return }
        // The first failure in a row is worth an info line; the redials that follow, a debug one.
        let first = state.withLock { $0.failures == 1 }
        context.logger.log(
            level: first ? .info : .debug, "peer unreachable",
            metadata: logMetadata.merging(["reason": "\(reason)", "raft.tcp.redial_in": "\(delay)"]) { $1 })
        context.reportUnreachable(peer)
        context.group.next().scheduleTask(in: TimeAmount(delay)) { [self] in redial() }
    }

    func redial() {
        let go = state.withLock { s -> Bool in
            guard case .waiting = s.phase else { return false }
            s.phase = .connecting
            return true
        }
        guard go else { return }
        counters.reconnected()
        connect()
    }

    /// The delay before the dial that follows `failures` failures in a row: the base backoff
    /// doubled per failure, capped, then drawn uniformly between half and all of it.
    static func backoff(after failures: Int, configuration c: TCPTransportConfiguration, using rng: inout some RandomNumberGenerator) -> Duration {
        let base = TimeAmount(c.reconnectBackoff).nanoseconds
        let cap = TimeAmount(c.maxReconnectBackoff).nanoseconds
        let doublings = min(max(failures - 1, 0), 40)
        let full = base > cap >> doublings ? cap : min(cap, base << doublings)
        let drawn = Int64.random(in: (full / 2)...max(full / 2, full), using: &rng)
        return .nanoseconds(drawn)
    }
}

/// The dialling side of a connection: sends this node's hello, checks the peer's answer, then
/// only watches the connection (messages flow out; nothing may come in after the answer).
final class DialerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WireFrame

    let link: PeerLink
    /// The TLS contexts of this connection, whose settings say how the peer's certificate must
    /// name it.
    let tls: TLSContexts?
    var answered = false
    /// The TLS handshake failed and was counted as a refusal (once per connection).
    var refusedByTLS = false
    var timeout: Scheduled<Void>?

    init(link: PeerLink, tls: TLSContexts?) {
        self.link = link
        self.tls = tls
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        do { try WireFormat.encode(.hello(link.hello), into: &buffer) } catch {
            // The configuration was validated: the cluster id fits. Close rather than trap.
            context.close(promise: nil)
            return
        }
        context.writeAndFlush(NIOAny(buffer), promise: nil)
        let channel = context.channel
        let limit = link.configuration.handshakeTimeout
        timeout = context.eventLoop.scheduleTask(in: TimeAmount(limit)) { [link] in
            link.context.logger.info("handshake timed out", metadata: link.logMetadata)
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !answered, case .hello(let answer) = frame else {
            link.context.logger.info("a peer sent frames after its handshake answer; closing", metadata: link.logMetadata)
            context.close(promise: nil)
            return
        }
        answered = true
        timeout?.cancel()
        if let why = link.refusal(of: answer) ?? certificateRefusal(context: context) {
            link.context.metrics.refused()
            link.context.logger.info("refused a peer's handshake answer: \(why)", metadata: link.logMetadata)
            context.close(promise: nil)
            return
        }
        link.established(context.channel)
    }

    /// Why the peer's certificate may not stand for the peer dialled, or `nil` if it may (or
    /// the connection is plain TCP).
    func certificateRefusal(context: ChannelHandlerContext) -> String? {
        guard let tls else { return nil }
        let certificate = try? context.pipeline.syncOperations.nioSSL_peerCertificate()
        return CertificateNodeIdentity.refusal(
            claimed: link.peer, certificate: certificate, clusterID: link.configuration.clusterID, policy: tls.settings.nodeIdentity)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, answered {
            let resume = link.state.withLock { s -> Bool in
                guard case .connected(let c) = s.phase, c === context.channel, !s.draining, !s.queue.isEmpty else { return false }
                s.draining = true
                return true
            }
            if resume { link.drain(context.channel) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        link.lost(context.channel, reason: answered ? "connection closed" : "connection closed during the handshake (refused?)")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !answered, isTLSFailure(error) {
            if !refusedByTLS {
                refusedByTLS = true
                link.context.metrics.refused()
                link.context.logger.info("refused a peer: the TLS handshake failed: \(error)", metadata: link.logMetadata)
            }
            context.close(promise: nil)
            return
        }
        link.context.logger.info("connection to a peer failed: \(error)", metadata: link.logMetadata)
        context.close(promise: nil)
    }
}
