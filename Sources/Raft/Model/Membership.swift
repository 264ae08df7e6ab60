/// The cluster membership: who votes, who only learns, where each member is reached and, during
/// a joint change, the voters being replaced.
///
/// A membership is data in the log (thesis ch. 4): every change is a log entry of kind
/// ``LogEntry/Kind/membership`` carrying the whole new value, and every snapshot's metadata
/// carries the value in force at its index. **A node uses the latest membership in its log,
/// committed or not** (thesis §4.1), or its snapshot's when the log holds none: a change takes
/// effect on a node the moment the node appends it, and is undone if a new leader truncates the
/// entry. Why not etcd's "once applied": a node whose commit index lags (a partitioned voter)
/// would keep counting votes with a membership two changes old, whose majorities need not
/// intersect the current one's; with the log's latest membership every node is at most one
/// change away from the leader's, and a leader proposes no change until an entry of its own
/// term has committed (the fix to single-server changes across leader changes).
///
/// Invariants (checked by ``RaftConfiguration/validate(_:)``): the lists are sorted without
/// duplicates, no id is ``NodeID/none``, no learner is also an incoming voter, and addresses are
/// known only for members. While joint, a voter being demoted is in ``outgoingVoters`` and in
/// ``learners`` at once: it votes in the old configuration and learns in the new.
public struct ConfState: Sendable, Hashable {
    /// The voters: during a joint change, those of the new configuration (sorted).
    public var voters: [NodeID]
    /// During a joint change, the voters of the old configuration (sorted); empty otherwise.
    /// While this is not empty, every election and commit needs a majority of ``voters`` *and*
    /// a majority of these (thesis §4.3).
    public var outgoingVoters: [NodeID]
    /// Members that receive the log and snapshots but never vote or count for a quorum (sorted).
    public var learners: [NodeID]
    /// Each member's address, opaque to Raft (`host:port` for the TCP transport). Members without
    /// one are reached however the transport was configured.
    public var addresses: [NodeID: String]
    /// During a joint change: whether the leader leaves it on its own once the entry that entered
    /// it commits (otherwise the operator calls `leaveJointMembership`).
    public var autoLeave: Bool

    /// Creates a membership. The lists are sorted here; duplicates are kept so that
    /// ``RaftConfiguration/validate(_:)`` can report them.
    public init(
        voters: [NodeID], learners: [NodeID] = [], outgoingVoters: [NodeID] = [], addresses: [NodeID: String] = [:],
        autoLeave: Bool = true
    ) {
        self.voters = voters.sorted()
        self.learners = learners.sorted()
        self.outgoingVoters = outgoingVoters.sorted()
        self.addresses = addresses
        self.autoLeave = autoLeave
    }

    /// The membership of a node that was never part of a cluster: it waits to be added by a
    /// leader, which sends it the log (or a snapshot) carrying the real membership.
    public static let empty = ConfState(voters: [])

    /// Whether this is ``empty``.
    public var isEmpty: Bool { voters.isEmpty && outgoingVoters.isEmpty && learners.isEmpty }

    /// Whether a joint change is in progress (``outgoingVoters`` is not empty).
    public var isJoint: Bool { !outgoingVoters.isEmpty }

    /// Every member (voters of both configurations and learners), sorted, each once.
    public var members: [NodeID] {
        var all = voters + outgoingVoters + learners
        all.sort()
        var out: [NodeID] = []
        out.reserveCapacity(all.count)
        for id in all where out.last != id { out.append(id) }
        return out
    }

    /// Whether `id` votes in either configuration.
    public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) || outgoingVoters.contains(id) }

    /// Whether `id` is a member at all.
    public func contains(_ id: NodeID) -> Bool { isVoter(id) || learners.contains(id) }

    /// The role `id` plays, or `nil` for a node that is not a member.
    public func role(of id: NodeID) -> MemberRole? {
        if voters.contains(id) { return .voter }
        if outgoingVoters.contains(id) { return .leavingVoter }
        if learners.contains(id) { return .learner }
        return nil
    }
}

/// The part a member plays in a ``ConfState``.
public enum MemberRole: Sendable, Hashable, CustomStringConvertible {
    /// Votes, and counts for every quorum.
    case voter
    /// Votes only in the old configuration of a joint change: it leaves the voters (removed, or
    /// demoted to learner) when the change completes.
    case leavingVoter
    /// Receives the log, never votes.
    case learner

    public var description: String {
        switch self {
        case .voter: "voter"
        case .leavingVoter: "leaving voter"
        case .learner: "learner"
        }
    }
}

/// One change to a membership, as an operator asks for it.
public enum MembershipChange: Sendable, Hashable, CustomStringConvertible {
    /// Adds a new member as a voter.
    case addVoter(NodeID, address: String)
    /// Adds a new member as a learner (non-voting: it receives the log, never votes).
    case addLearner(NodeID, address: String)
    /// Makes a learner a voter.
    case promote(NodeID)
    /// Makes a voter a learner.
    case demote(NodeID)
    /// Removes a member, voter or learner.
    case remove(NodeID)
    /// Changes a member's address.
    case setAddress(NodeID, String)

    /// The member the change is about.
    public var member: NodeID {
        switch self {
        case .addVoter(let id, _), .addLearner(let id, _), .promote(let id), .demote(let id), .remove(let id),
            .setAddress(let id, _):
            id
        }
    }

    public var description: String {
        switch self {
        case .addVoter(let id, let a): "add voter \(id)\(a.isEmpty ? "" : " at \(a)")"
        case .addLearner(let id, let a): "add learner \(id)\(a.isEmpty ? "" : " at \(a)")"
        case .promote(let id): "promote \(id)"
        case .demote(let id): "demote \(id)"
        case .remove(let id): "remove \(id)"
        case .setAddress(let id, let a): "set the address of \(id) to \(a)"
        }
    }
}

/// How a leader carries out a set of changes.
public enum MembershipChangeMode: Sendable, Hashable {
    /// One step when at most one voter is added or removed (thesis §4.1: any majority of the old
    /// voters and any of the new then intersect); joint consensus otherwise, left automatically.
    case automatic
    /// Joint consensus (thesis §4.3) even for a single change. With `autoLeave` the leader leaves
    /// the joint configuration on its own once the entry that entered it commits; without, it
    /// stays joint until the operator asks it to leave.
    case joint(autoLeave: Bool)
}

extension ConfState {
    /// The membership `changes` produce from this one, and whether it is reached in one step.
    ///
    /// - Throws: ``RaftError/Code/invalidArgument`` naming the first bad change: a zero id, a
    ///   member named twice, adding a member that exists, promoting a voter or demoting a learner,
    ///   leaving no voter; ``RaftError/Code/unknownPeer`` for removing, promoting, demoting or
    ///   readdressing a node that is not a member; ``RaftError/Code/membershipChangeInProgress``
    ///   when this membership is joint (leave it first).
    public func applying(_ changes: [MembershipChange], mode: MembershipChangeMode = .automatic) throws(RaftError) -> ConfState {
        func refuse(_ why: String) -> RaftError { RaftError(.invalidArgument, "membership change refused: \(why)") }
        func unknown(_ id: NodeID) -> RaftError {
            RaftError(.unknownPeer, "membership change refused: node \(id) is not a member (members: \(members))")
        }
        if isJoint {
            throw RaftError(
                .membershipChangeInProgress,
                "the cluster is in a joint membership (old voters \(outgoingVoters), new \(voters)); it must leave it before another change")
        }
        if changes.isEmpty { throw refuse("no change given") }
        var voters = Set(self.voters)
        var learners = Set(self.learners)
        var addresses = self.addresses
        var seen = Set<NodeID>()
        for c in changes {
            let id = c.member
            if id.isNone { throw refuse("id 0 is reserved for \"no node\"") }
            if !seen.insert(id).inserted { throw refuse("node \(id) is named in more than one change") }
            switch c {
            case .addVoter(_, let address), .addLearner(_, let address):
                if contains(id) { throw refuse("node \(id) is already a member (\(role(of: id)!))") }
                if case .addVoter = c { voters.insert(id) } else { learners.insert(id) }
                if !address.isEmpty { addresses[id] = address }
            case .promote:
                guard contains(id) else { throw unknown(id) }
                guard learners.remove(id) != nil else { throw refuse("node \(id) is a voter already: only learners are promoted") }
                voters.insert(id)
            case .demote:
                guard contains(id) else { throw unknown(id) }
                guard voters.remove(id) != nil else { throw refuse("node \(id) is a learner already: only voters are demoted") }
                learners.insert(id)
            case .remove:
                guard contains(id) else { throw unknown(id) }
                voters.remove(id)
                learners.remove(id)
                addresses[id] = nil
            case .setAddress(_, let address):
                guard contains(id) else { throw unknown(id) }
                addresses[id] = address.isEmpty ? nil : address
            }
        }
        if voters.isEmpty { throw refuse("the change leaves no voter (a cluster needs at least one)") }
        let changedVoters = voters.symmetricDifference(self.voters).count
        let joint: Bool
        let autoLeave: Bool
        switch mode {
        case .automatic:
            joint = changedVoters > 1
            autoLeave = true
        case .joint(let leave):
            joint = true
            autoLeave = leave
        }
        if !joint {
            return ConfState(voters: Array(voters), learners: Array(learners), addresses: addresses)
        }
        // Joint: members leaving altogether stay reachable (and keep their address) until the
        // change completes; they vote in the outgoing configuration.
        for id in self.voters where !voters.contains(id) && !learners.contains(id) {
            if let a = self.addresses[id] { addresses[id] = a }
        }
        return ConfState(
            voters: Array(voters), learners: Array(learners), outgoingVoters: self.voters, addresses: addresses,
            autoLeave: autoLeave)
    }

    /// The membership that completes this joint one: the new voters alone; members that were
    /// only outgoing voters are gone. `nil` if this membership is not joint.
    public var leavingJoint: ConfState? {
        guard isJoint else { return nil }
        let keep = Set(members).subtracting(outgoingVoters.filter { !voters.contains($0) && !learners.contains($0) })
        return ConfState(voters: voters, learners: learners, addresses: addresses.filter { keep.contains($0.key) })
    }
}

extension ConfState {
    /// Version of the binary form written by ``encoded()``.
    static let encodingVersion: UInt8 = 1

    /// The membership's binary form, as stored in membership entries, the write-ahead log and
    /// snapshot metadata, and sent on the wire. Little-endian: version (u8, 1), flags (u8: bit 0
    /// autoLeave), then three id lists (voters, outgoing voters, learners), each a u32 count and
    /// that many u64 ids, then a u32 count of addresses, each a u64 id, a u32 length and that
    /// many bytes of UTF-8. See the "Storage formats" article.
    public func encoded() -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(18 + 8 * (voters.count + outgoingVoters.count + learners.count) + 16 * addresses.count)
        b.append(Self.encodingVersion)
        b.append(autoLeave ? 1 : 0)
        func u32(_ v: UInt32) { for k in 0..<4 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
        func u64(_ v: UInt64) { for k in 0..<8 { b.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
        for list in [voters, outgoingVoters, learners] {
            u32(UInt32(list.count))
            for id in list { u64(id.rawValue) }
        }
        u32(UInt32(addresses.count))
        for id in addresses.keys.sorted() {
            let utf8 = Array(addresses[id]!.utf8)
            u64(id.rawValue)
            u32(UInt32(utf8.count))
            b.append(contentsOf: utf8)
        }
        return b
    }

    /// Decodes ``encoded()``'s binary form.
    ///
    /// - Throws: ``RaftError/Code/corruption`` for anything malformed: an unknown version or flag,
    ///   a count past the bytes present, bytes left over, ids out of order (each value has one
    ///   form), an address that is not UTF-8. The
    ///   value is not validated beyond its form (``RaftConfiguration/validate(_:)`` does that).
    public init(decoding bytes: ArraySlice<UInt8>) throws(RaftError) {
        var at = bytes.startIndex
        func bad(_ why: String) -> RaftError { RaftError(.corruption, "membership record: \(why)") }
        func u8() throws(RaftError) -> UInt8 {
            guard at < bytes.endIndex else { throw bad("truncated") }
            defer { at += 1 }
            return bytes[at]
        }
        func uint(_ width: Int) throws(RaftError) -> UInt64 {
            guard bytes.endIndex - at >= width else { throw bad("truncated") }
            var v: UInt64 = 0
            for k in 0..<width { v |= UInt64(bytes[at + k]) << (8 * UInt64(k)) }
            at += width
            return v
        }
        func ids() throws(RaftError) -> [NodeID] {
            let n = try uint(4)
            guard n <= UInt64(bytes.endIndex - at) / 8 else { throw bad("\(n) ids do not fit in the bytes left") }
            var out: [NodeID] = []
            out.reserveCapacity(Int(n))
            for _ in 0..<n {
                let id = NodeID(rawValue: try uint(8))
                // One form per value: lists are written sorted, so anything else is damage.
                if let last = out.last, id < last { throw bad("ids out of order (\(id) after \(last))") }
                out.append(id)
            }
            return out
        }
        let version = try u8()
        guard version == Self.encodingVersion else { throw bad("unknown version \(version)") }
        let flags = try u8()
        guard flags & ~1 == 0 else { throw bad("unknown flags \(flags)") }
        let voters = try ids()
        let outgoing = try ids()
        let learners = try ids()
        let n = try uint(4)
        guard n <= UInt64(bytes.endIndex - at) / 12 else { throw bad("\(n) addresses do not fit in the bytes left") }
        var addresses: [NodeID: String] = [:]
        var previous: NodeID?
        for _ in 0..<n {
            let id = NodeID(rawValue: try uint(8))
            if let previous, id <= previous { throw bad("addresses out of order (\(id) after \(previous))") }
            previous = id
            let length = try uint(4)
            guard length <= UInt64(bytes.endIndex - at) else { throw bad("an address of \(length) bytes does not fit") }
            let raw = bytes[at..<(at + Int(length))]
            at += Int(length)
            guard let text = String(validating: raw, as: UTF8.self) else { throw bad("the address of node \(id) is not UTF-8") }
            if addresses.updateValue(text, forKey: id) != nil { throw bad("node \(id) has two addresses") }
        }
        guard at == bytes.endIndex else { throw bad("\(bytes.endIndex - at) bytes left over") }
        self.init(voters: voters, learners: learners, outgoingVoters: outgoing, addresses: addresses, autoLeave: flags & 1 != 0)
    }
}
