import Raft
import RaftTransportTCP
import Synchronization

/// Who the members are and where each is reached, shared by the HTTP API (redirects, the
/// cluster view) and the transport (whom to dial).
///
/// This is the seam membership changes slot into: when a change commits, the node calls
/// ``setMembers(_:)`` with the new set, and the redirects, `GET /cluster` and the transport's
/// peers follow. (The membership endpoints themselves wait for the library's membership
/// changes.)
public final class KVClusterDirectory: Sendable {
    /// This node.
    public let me: NodeID
    private let state: Mutex<[NodeID: KVMember]>
    private let onChange: @Sendable ([KVMember]) -> Void

    init(me: NodeID, members: [KVMember], onChange: @escaping @Sendable ([KVMember]) -> Void) {
        self.me = me
        state = Mutex(Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) }))
        self.onChange = onChange
    }

    /// Every member, in id order.
    public var members: [KVMember] { state.withLock { $0.values.sorted { $0.id < $1.id } } }

    /// One member, if known.
    public func member(_ id: NodeID) -> KVMember? { state.withLock { $0[id] } }

    /// Replaces the members (and tells the transport whom to dial).
    public func setMembers(_ members: [KVMember]) {
        state.withLock { $0 = Dictionary(uniqueKeysWithValues: members.map { ($0.id, $0) }) }
        onChange(members)
    }

    /// Updates one member's addresses (a node that came back on another port).
    public func update(_ member: KVMember) {
        let all = state.withLock { s -> [KVMember] in
            s[member.id] = member
            return s.values.sorted { $0.id < $1.id }
        }
        onChange(all)
    }
}
