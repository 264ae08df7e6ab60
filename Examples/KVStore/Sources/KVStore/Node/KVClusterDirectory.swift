import Logging
import Raft
import RaftTransportTCP
import Synchronization

/// Who the members are and where each is reached, shared by the HTTP API (redirects, the
/// cluster view) and the transport (whom to dial).
///
/// The members are those of the membership the node uses (``follow(_:)``, called by the node
/// after every change it appends or learns of). A member's addresses come from that membership
/// (see ``KVMember/membershipAddress`` for the format) and, where it has none, from the
/// configured address book (`kvstore serve --peers`): the founding members of a cluster are in
/// its first membership by id only, since the library bootstraps a log with voters and no
/// addresses, so their addresses always come from the book.
///
/// A member removed by the latest change stays a peer until the next change. A change takes
/// effect on a node when it appends the entry, long before the entry commits, and a leader that
/// removes itself needs its followers' acknowledgements to commit its own removal (thesis
/// §4.2.2): if they dropped it at once, the removal would never commit under it. (The next
/// change can only come after this one committed: a leader proposes one at a time.)
///
/// The directory owns the transport's peer set: whenever the membership or the book changes it
/// hands the transport every other member's raft address, under its lock, so that two changes
/// on two threads reach the transport in the order they were made. (The TCP transport could follow the
/// membership on its own, but it reads a bare `host:port`, not this example's two addresses.)
public final class KVClusterDirectory: Sendable {
    struct State {
        var book: [NodeID: KVMember]
        /// The membership the node uses; ``Raft/ConfState/empty`` until it reports one, and
        /// while a node started with ``KVNodeConfiguration/join`` waits to be added.
        var membership = ConfState.empty
        /// The membership before the latest change: its members stay reachable (see
        /// ``KVClusterDirectory``).
        var previous = ConfState.empty
    }

    /// This node.
    public let me: NodeID
    private let state: Mutex<State>
    private let onPeersChange: @Sendable ([NodeID: PeerAddress]) -> Void
    private let logger: Logger

    init(
        me: NodeID, book: [KVMember], logger: Logger = Logger(label: "kvstore.directory"),
        onPeersChange: @escaping @Sendable ([NodeID: PeerAddress]) -> Void
    ) {
        self.me = me
        self.logger = logger
        state = Mutex(State(book: Dictionary(uniqueKeysWithValues: book.map { ($0.id, $0) })))
        self.onPeersChange = onPeersChange
    }

    /// The members, in id order, with the addresses known for them; before the node reported a
    /// membership (or while it waits to join), those of the address book.
    public var members: [KVMember] {
        state.withLock { s in
            let ids = s.membership.isEmpty ? s.book.keys.sorted() : s.membership.members
            return ids.compactMap { Self.resolve($0, in: s.membership, book: s.book) }
        }
    }

    /// Member `id`'s addresses: from the membership, else from the address book; `nil` if
    /// neither knows it.
    public func member(_ id: NodeID) -> KVMember? {
        state.withLock { Self.resolve(id, in: $0.membership, book: $0.book) }
    }

    /// Member `id`'s addresses as `membership` (a ``Raft/RaftStatus/membership`` read together
    /// with the rest of a status) gives them, else from the address book.
    public func member(_ id: NodeID, in membership: ConfState) -> KVMember? {
        state.withLock { Self.resolve(id, in: membership, book: $0.book) }
    }

    /// Follows the membership the node uses now (its transport's
    /// ``Raft/RaftTransport/membershipChanged(_:of:)``): the transport dials new members and
    /// drops removed ones. Runs on the node's loop; it only takes a lock.
    func follow(_ membership: ConfState) {
        let changed = state.withLock { s in
            guard membership != s.membership else { return false }
            s.previous = s.membership
            s.membership = membership
            onPeersChange(peerAddresses(s))
            return true
        }
        // Said once per membership (reads fall back to the address book without a word).
        guard changed else { return }
        for (id, text) in membership.addresses.sorted(by: { $0.key < $1.key }) {
            do throws(RaftError) {
                _ = try KVMember(id: id, membershipAddress: text)
            } catch {
                logger.warning(
                    "member \(id)'s address in the membership cannot be read; using the address book's, if any",
                    metadata: ["address": "\(text)", "error": "\(error.message)"])
            }
        }
    }

    /// Replaces the address book (the configured members, with their current addresses).
    public func setAddressBook(_ members: [KVMember]) {
        state.withLock { s in
            s.book = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) })
            onPeersChange(peerAddresses(s))
        }
    }

    /// Updates one member's addresses in the address book (a node that came back on another
    /// port).
    public func update(_ member: KVMember) {
        state.withLock { s in
            s.book[member.id] = member
            onPeersChange(peerAddresses(s))
        }
    }

    /// Every other member's raft address: the members of the membership and of the one before
    /// it, or the book's while the membership is empty (a joining node answers whoever the book
    /// names).
    private func peerAddresses(_ s: State) -> [NodeID: PeerAddress] {
        var peers: [NodeID: PeerAddress] = [:]
        if s.membership.isEmpty {
            for (id, m) in s.book where id != me { peers[id] = m.raftAddress }
            return peers
        }
        for id in s.previous.members where id != me {
            if let m = Self.resolve(id, in: s.previous, book: s.book) { peers[id] = m.raftAddress }
        }
        for id in s.membership.members where id != me {
            if let m = Self.resolve(id, in: s.membership, book: s.book) { peers[id] = m.raftAddress }
        }
        return peers
    }

    private static func resolve(_ id: NodeID, in membership: ConfState, book: [NodeID: KVMember]) -> KVMember? {
        let configured = book[id]
        guard let text = membership.addresses[id], var m = try? KVMember(id: id, membershipAddress: text) else { return configured }
        if m.httpAddress == nil { m.httpAddress = configured?.httpAddress }
        return m
    }
}

/// The transport a ``KVNode``'s `RaftNode` sends through: its `TCPTransport`, with the
/// membership going to the ``KVClusterDirectory``, which reads the members' addresses in this
/// example's format and gives the transport its peers.
struct KVPeerTransport: RaftTransport {
    let tcp: TCPTransport
    let directory: KVClusterDirectory

    func send(_ messages: [Message]) { tcp.send(messages) }

    func setEventHandler(for node: NodeID, _ handler: (@Sendable (TransportEvent) -> Void)?) {
        tcp.setEventHandler(for: node, handler)
    }

    func membershipChanged(_ membership: ConfState, of node: NodeID) {
        guard node == directory.me else { return }
        directory.follow(membership)
    }
}
