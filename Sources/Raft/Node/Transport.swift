import Synchronization

/// How a ``RaftNode`` reaches its peers. Implementations deliver each message to the node it
/// is addressed to by calling ``RaftNode/receive(_:)`` there, in any order, possibly losing
/// some; Raft tolerates loss, duplication and reordering.
///
/// A transport that carries ``Message/Kind/installSnapshot`` must report how each transfer
/// ended through ``RaftNode/reportSnapshot(to:failed:)`` on the sending node.
public protocol RaftTransport: Sendable {
    /// Sends messages; must not block.
    func send(_ messages: [Message])
}

/// An in-process transport: every node of a cluster in one process (tests, examples, the demo).
/// It can cut links to simulate partitions.
public final class LocalTransport: RaftTransport {
    struct State {
        var receivers: [NodeID: @Sendable (Message) -> Void] = [:]
        var snapshotReporters: [NodeID: @Sendable (NodeID, Bool) -> Void] = [:]
        var cut: Set<[NodeID]> = []
    }

    let state = Mutex(State())

    /// Creates an empty transport.
    public init() {}

    /// Connects a node: messages addressed to `id` are handed to `receive`; `reportSnapshot`
    /// learns how snapshots sent by `id` ended.
    public func register(
        _ id: NodeID, receive: @escaping @Sendable (Message) -> Void, reportSnapshot: @escaping @Sendable (NodeID, Bool) -> Void
    ) {
        state.withLock {
            $0.receivers[id] = receive
            $0.snapshotReporters[id] = reportSnapshot
        }
    }

    /// Disconnects a node (it stopped).
    public func unregister(_ id: NodeID) {
        state.withLock {
            $0.receivers[id] = nil
            $0.snapshotReporters[id] = nil
        }
    }

    /// Cuts (or restores) the link between two nodes in both directions.
    public func setLink(_ a: NodeID, _ b: NodeID, connected: Bool) {
        state.withLock {
            let key = [min(a, b), max(a, b)]
            if connected { $0.cut.remove(key) } else { $0.cut.insert(key) }
        }
    }

    /// Isolates a node from every other (or reconnects it).
    public func isolate(_ id: NodeID, _ isolated: Bool, from others: [NodeID]) {
        for o in others where o != id { setLink(id, o, connected: !isolated) }
    }

    public func send(_ messages: [Message]) {
        for m in messages {
            let (receiver, reporter) = state.withLock { s -> ((@Sendable (Message) -> Void)?, (@Sendable (NodeID, Bool) -> Void)?) in
                let linked = !s.cut.contains([min(m.from, m.to), max(m.from, m.to)])
                return (linked ? s.receivers[m.to] : nil, s.snapshotReporters[m.from])
            }
            receiver?(m)
            if case .installSnapshot = m.kind { reporter?(m.to, receiver == nil) }
        }
    }
}
