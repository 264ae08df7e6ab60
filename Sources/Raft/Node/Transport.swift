import Synchronization

/// How a ``RaftNode`` reaches its peers. Implementations deliver each message to the node it
/// is addressed to by calling ``RaftNode/receive(_:)`` there, in any order, possibly losing
/// some; Raft tolerates loss, duplication and reordering.
///
/// A node never sends a whole snapshot in one message: it streams it as
/// ``Message/Kind/snapshotChunk(_:)`` messages no larger than
/// ``RaftNodeConfiguration/snapshotChunkBytes`` of data, and resumes or restarts a transfer
/// itself when chunks are lost, so a transport treats them like any other message.
public protocol RaftTransport: Sendable {
    /// Sends messages; must not block.
    func send(_ messages: [Message])

    /// Tells the transport where to report what it learns about `node`'s peers
    /// (``TransportEvent``), or to stop reporting (`nil`). A ``RaftNode`` calls it once, when it
    /// is created, for its own id; a transport shared by several nodes keeps one handler per
    /// node. The handler only queues the event for the node's run loop, so a transport may call
    /// it from any thread, at any time, as often as it likes.
    ///
    /// The default implementation reports nothing: a transport that cannot tell when a peer is
    /// unreachable need not implement it (Raft then notices by missing answers alone).
    func setEventHandler(for node: NodeID, _ handler: (@Sendable (TransportEvent) -> Void)?)
    /// Tells the transport the membership `node` uses now (its voters, learners and their
    /// addresses, ``ConfState/addresses``), so it can dial new members and drop removed ones
    /// without a restart. A ``RaftNode`` calls ``membershipChanged(_:previous:of:)``, whose
    /// default implementation calls this: once at start and again after every change it
    /// appends or learns of (a change takes effect when appended, and may be undone by a new
    /// leader, so it can come back), and when a change commits. Called on the node's run loop:
    /// it must not block.
    ///
    /// The default implementation does nothing: a transport with a fixed address book need
    /// not implement it.
    func membershipChanged(_ membership: ConfState, of node: NodeID)
    /// Tells the transport the membership `node` uses now and, while the change that made it
    /// is not yet committed, the membership before it (`previous`, `nil` once the change
    /// commits; a ``RaftNode`` calls again then). A transport keeps talking to the members of
    /// both: a member the pending change removes still counts until the change commits (a
    /// leader that removes itself needs its followers' acknowledgements to commit its own
    /// removal, thesis §4.2.2). Once `previous` is `nil`, removed members can be dropped.
    /// Called on the node's run loop: it must not block.
    ///
    /// The default implementation calls ``membershipChanged(_:of:)`` with `membership` alone.
    func membershipChanged(_ membership: ConfState, previous: ConfState?, of node: NodeID)
}

extension RaftTransport {
    /// Reports nothing.
    public func setEventHandler(for node: NodeID, _ handler: (@Sendable (TransportEvent) -> Void)?) {}
    /// Does nothing.
    public func membershipChanged(_ membership: ConfState, of node: NodeID) {}
    /// Calls ``membershipChanged(_:of:)`` with `membership`.
    public func membershipChanged(_ membership: ConfState, previous: ConfState?, of node: NodeID) {
        membershipChanged(membership, of: node)
    }
}

/// What a transport reports to the node that sends through it.
public enum TransportEvent: Sendable, Hashable {
    /// Messages to this peer are not getting through (it cannot be dialled, its connection
    /// broke, or its queue is full and messages are dropped). A leader stops streaming appends
    /// to it and probes instead, one append per heartbeat, until it answers
    /// (``RaftCore/reportUnreachable(_:)``, as etcd's `ReportUnreachable`): nothing piles up
    /// for a peer that cannot take it.
    case unreachable(NodeID)
}

/// An in-process transport: every node of a cluster in one process (tests, examples, the demo).
/// It can cut links to simulate partitions.
public final class LocalTransport: RaftTransport {
    struct State {
        var receivers: [NodeID: @Sendable (Message) -> Void] = [:]
        var cut: Set<[NodeID]> = []
        var drop: (@Sendable (Message) -> Bool)?
    }

    let state = Mutex(State())

    /// Creates an empty transport.
    public init() {}

    /// Connects a node: messages addressed to `id` are handed to `receive`.
    public func register(_ id: NodeID, receive: @escaping @Sendable (Message) -> Void) {
        state.withLock { $0.receivers[id] = receive }
    }

    /// Disconnects a node (it stopped).
    public func unregister(_ id: NodeID) {
        state.withLock { $0.receivers[id] = nil }
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

    /// Loses every message for which `drop` returns `true` (fault injection); `nil` loses none.
    public func setDropFilter(_ drop: (@Sendable (Message) -> Bool)?) {
        state.withLock { $0.drop = drop }
    }

    public func send(_ messages: [Message]) {
        for m in messages {
            let (receiver, drop) = state.withLock { s -> ((@Sendable (Message) -> Void)?, (@Sendable (Message) -> Bool)?) in
                guard !s.cut.contains([min(m.from, m.to), max(m.from, m.to)]) else { return (nil, nil) }
                return (s.receivers[m.to], s.drop)
            }
            guard let receiver, !(drop?(m) ?? false) else { continue }
            receiver(m)
        }
    }
}
