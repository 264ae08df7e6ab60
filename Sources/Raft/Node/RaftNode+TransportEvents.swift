/// Feedback from the transport into the node: a peer the transport cannot reach is reported to
/// the core on the run loop, as every other event is.
extension RaftNode {
    /// Registers the node's handler with its transport (called once, by the initializer). The
    /// handler only queues the event; once the node stopped, the closed inbox refuses it.
    func attachToTransport() {
        transport.setEventHandler(for: id) { [inbox] event in inbox.post(.transport(event)) }
    }
}

extension NodeLoop {
    /// Hands a transport's report to the core. ``RaftCore/reportUnreachable(_:)`` changes
    /// something only on a leader streaming appends to that follower (it probes instead, one
    /// append per heartbeat, until the follower answers); everywhere else it does nothing.
    func handle(_ event: TransportEvent) {
        switch event {
        case .unreachable(let peer):
            guard peer != node.id else { return }
            core.reportUnreachable(peer)
        }
    }
}
