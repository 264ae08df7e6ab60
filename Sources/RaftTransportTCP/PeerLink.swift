import Logging
import NIOCore
import NIOPosix
import Raft
import Synchronization

/// What every link of one transport shares.
struct LinkContext: Sendable {
    let configuration: TCPTransportConfiguration
    let group: any EventLoopGroup
    let logger: Logger
    let metrics: TransportMetrics
    /// The TLS contexts, when the transport runs TLS.
    /// The TLS contexts of new connections, when TLS is configured.
    let tls: ReloadableTLS?
    /// Tells the node that `peer` is unreachable.
    let reportUnreachable: @Sendable (NodeID) -> Void
}

/// The outbound connection to one peer on one lane: a bounded queue of messages, drained in
/// batches (many frames per write and flush) while the connection is up, and a dialer that
/// redials with exponential backoff and jitter while it is not.
///
/// Invariant: the queue never holds more than ``TCPTransportConfiguration/maxQueuedMessages``
/// messages or ``TCPTransportConfiguration/maxQueuedBytes`` encoded bytes; what does not fit is
/// dropped and counted. Beyond the queue, at most one batch plus the channel's write-buffer
/// high watermark is held by the connection.
final class PeerLink: Sendable {
    enum Phase {
        /// Never dialled: the first message dials.
        case idle
        /// A dial or a handshake is under way.
        case connecting
        /// The handshake completed: messages flow.
        case connected(any Channel)
        /// The last dial failed or the connection broke; a redial is scheduled.
        case waiting
        /// The link was closed (the transport shut down or the peer was removed).
        case closed
    }

    /// A queued message and its encoded size (measured once, when it is queued).
    struct Queued {
        let message: Message
        let size: Int
    }

    struct State {
        var queue = CircularBuffer<Queued>()
        var queuedBytes = 0
        var phase = Phase.idle
        /// A drain of the queue is scheduled or running on the channel's event loop.
        var draining = false
        /// Failed dials (or broken connections) in a row; zero once a handshake completes.
        var failures = 0
        /// When the node was last told the peer is unreachable because of a drop.
        var lastDropReport: NIODeadline?
        /// A random generator for the backoff's jitter.
        var rng = SystemRandomNumberGenerator()
    }

    let peer: NodeID
    let lane: Hello.Lane
    let address: PeerAddress
    let context: LinkContext
    let counters: TransportMetrics.Outbound
    let state = Mutex(State())

    init(peer: NodeID, lane: Hello.Lane, address: PeerAddress, context: LinkContext) {
        self.peer = peer
        self.lane = lane
        self.address = address
        self.context = context
        counters = context.metrics.outbound(peer, lane)
    }

    var configuration: TCPTransportConfiguration { context.configuration }

    var logMetadata: Logger.Metadata {
        ["raft.peer": "\(peer)", "raft.tcp.lane": "\(lane.name)", "raft.tcp.address": "\(address)"]
    }

    // MARK: Sending

    /// Queues messages for the peer (never blocks): dials if the link is idle, schedules a
    /// drain if it is connected, and drops (and counts) what the queue cannot hold.
    func enqueue(_ messages: some Collection<Message>) {
        var dial = false
        var drainOn: (any Channel)?
        var dropped = 0
        var report = false
        state.withLock { s in
            if case .closed = s.phase {
                dropped = messages.count
                return
            }
            for m in messages {
                let size = WireFormat.frameSize(of: m)
                guard size <= configuration.maxFrameBytes, s.queue.count < configuration.maxQueuedMessages,
                    s.queuedBytes + size <= configuration.maxQueuedBytes
                else {
                    dropped += 1
                    continue
                }
                s.queue.append(Queued(message: m, size: size))
                s.queuedBytes += size
            }
            switch s.phase {
            case .idle:
                s.phase = .connecting
                dial = true
            case .connected(let channel) where !s.draining && !s.queue.isEmpty:
                s.draining = true
                drainOn = channel
            default:
                break
            }
            if dropped > 0 {
                // At most one report per backoff step: the core only needs to hear it once.
                let now = NIODeadline.now()
                if s.lastDropReport.map({ now - $0 >= TimeAmount(configuration.reconnectBackoff) }) ?? true {
                    s.lastDropReport = now
                    report = true
                }
            }
        }
        if dropped > 0 {
            counters.dropped(dropped)
            context.logger.debug("dropped messages to a peer", metadata: logMetadata.merging(["count": "\(dropped)"]) { $1 })
        }
        if report { context.reportUnreachable(peer) }
        if dial { connect() }
        if let channel = drainOn { channel.eventLoop.execute { self.drain(channel) } }
    }

    /// Writes what is queued to `channel`, a batch of up to ``TCPTransportConfiguration/maxBatchBytes``
    /// per write and flush, while the channel is writable. Runs on the channel's event loop.
    func drain(_ channel: any Channel) {
        while true {
            var batch: [Queued] = []
            var bytes = 0
            let proceed = state.withLock { s -> Bool in
                guard case .connected(let c) = s.phase, c === channel, channel.isWritable, !s.queue.isEmpty else {
                    s.draining = false
                    return false
                }
                while let q = s.queue.first {
                    if !batch.isEmpty && bytes + q.size > configuration.maxBatchBytes { break }
                    batch.append(s.queue.removeFirst())
                    bytes += q.size
                    s.queuedBytes -= q.size
                }
                return true
            }
            guard proceed else { return }
            write(batch, bytes: bytes, to: channel, promise: nil)
        }
    }

    func write(_ batch: [Queued], bytes: Int, to channel: any Channel, promise: EventLoopPromise<Void>?) {
        var buffer = channel.allocator.buffer(capacity: bytes)
        var frames = 0
        for q in batch {
            // Every message was measured against the frame limit when queued; what can still
            // fail is an append whose entries skip an index (the core never builds one): a drop.
            do {
                try WireFormat.encode(.message(q.message), into: &buffer, maxFrameBytes: configuration.maxFrameBytes)
                frames += 1
            } catch { counters.dropped(1) }
        }
        counters.sent(frames: frames, bytes: buffer.readableBytes)
        channel.writeAndFlush(buffer, promise: promise)
    }

    /// Writes everything still queued, then closes the connection (graceful shutdown). The
    /// returned future completes once the connection is closed, or once `timeout` passed.
    func flushAndClose(within timeout: Duration) -> EventLoopFuture<Void>? {
        let (channel, batch, bytes) = state.withLock { s -> ((any Channel)?, [Queued], Int) in
            var channel: (any Channel)?
            if case .connected(let c) = s.phase { channel = c }
            s.phase = .closed
            let batch = Array(s.queue)
            let bytes = s.queuedBytes
            s.queue.removeAll()
            s.queuedBytes = 0
            return (channel, batch, bytes)
        }
        guard let channel else { return nil }
        let loop = channel.eventLoop
        let written = loop.makePromise(of: Void.self)
        loop.execute {
            if batch.isEmpty { written.succeed() } else { self.write(batch, bytes: bytes, to: channel, promise: written) }
        }
        let deadline = loop.scheduleTask(in: TimeAmount(timeout)) { channel.close(promise: nil) }
        return written.futureResult.flatMap { channel.close() }.recover { _ in }.always { _ in deadline.cancel() }
    }

    /// Closes the link at once: the queue is dropped, the connection closed, no redial.
    func close() {
        let channel = state.withLock { s -> (any Channel)? in
            var channel: (any Channel)?
            if case .connected(let c) = s.phase { channel = c }
            s.phase = .closed
            s.queue.removeAll()
            s.queuedBytes = 0
            return channel
        }
        channel?.close(promise: nil)
    }
}
