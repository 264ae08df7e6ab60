import Raft

extension SimCluster {
    /// The voters `id` is bootstrapped with: the cluster's initial voters for one of them, none
    /// for a spare node (it waits to be added).
    func bootstrap(_ id: NodeID) -> [NodeID] { bootstrapVoters.contains(id) ? bootstrapVoters : [] }

    /// Proposes a membership change at `id` (see ``RaftCore/proposeMembershipChange(_:mode:)``).
    @discardableResult
    public func changeMembership(
        _ id: NodeID, _ changes: [MembershipChange], mode: MembershipChangeMode = .automatic
    ) throws(RaftError) -> ProposalReceipt? {
        let r = try withCore(id) { (c: inout RaftCore) throws(RaftError) in try c.proposeMembershipChange(changes, mode: mode) }
        if r != nil {
            membershipChanges += 1
            note("membership change at \(id): \(changes)")
        }
        return r
    }

    /// Proposes leaving a joint membership at `id` (``RaftCore/leaveJointMembership()``).
    @discardableResult
    public func leaveJoint(_ id: NodeID) throws(RaftError) -> ProposalReceipt? {
        try withCore(id) { (c: inout RaftCore) throws(RaftError) in try c.leaveJointMembership() }
    }

    /// Asks leader `id` to hand leadership to `target` (``RaftCore/transferLeadership(to:)``).
    public func transferLeadership(_ id: NodeID, to target: NodeID) throws(RaftError) {
        guard try withCore(id, { (c: inout RaftCore) throws(RaftError) in try c.transferLeadership(to: target) }) != nil else { return }
        transfers += 1
        note("transfer at \(id) to \(target)")
    }

    /// Asks the leader for a random valid change (see ``SimFaults/membershipRate``). Refusals
    /// (a change already pending, say) are expected and ignored.
    func randomMembershipChange() {
        guard let l = leader, let c = core(l) else { return }
        let conf = c.membership
        if conf.isJoint {
            if !conf.autoLeave { _ = try? leaveJoint(l) }
            return
        }
        let spare = ids.filter { !conf.contains($0) }
        var options: [[MembershipChange]] = []
        for s in spare {
            options.append([.addLearner(s, address: "sim-\(s)")])
            options.append([.addVoter(s, address: "sim-\(s)")])
        }
        for learner in conf.learners {
            options.append([.promote(learner)])
            options.append([.remove(learner)])
        }
        // Keep two voters at least, so the cluster stays interesting.
        if conf.voters.count > 2 {
            for v in conf.voters {
                options.append([.remove(v)])
                options.append([.demote(v)])
            }
        }
        // A replacement: two voters change, so joint consensus.
        if let s = spare.first, conf.voters.count > 1 {
            let v = conf.voters[Int(rng.next() % UInt64(conf.voters.count))]
            options.append([.addVoter(s, address: "sim-\(s)"), .remove(v)])
        }
        guard !options.isEmpty else { return }
        let changes = options[Int(rng.next() % UInt64(options.count))]
        let mode: MembershipChangeMode = chance(0.3) ? .joint(autoLeave: chance(0.7)) : .automatic
        _ = try? changeMembership(l, changes, mode: mode)
    }

    /// Asks the leader to hand leadership to a random other voter.
    func randomTransfer() {
        guard let l = leader, let c = core(l) else { return }
        let others = c.voters.filter { $0 != l }
        guard !others.isEmpty else { return }
        try? transferLeadership(l, to: others[Int(rng.next() % UInt64(others.count))])
    }

    /// What a core looked like before an input, to check what the input committed.
    struct CommitWatch {
        let leader: Bool
        let term: Term
        let commit: LogIndex
        let membership: ConfState

        init(_ c: RaftCore) {
            leader = c.role == .leader
            term = c.term
            commit = c.commitIndex
            membership = c.membership
        }
    }

    /// A leader that advanced its commit index must hold that entry on a majority of every
    /// voter set of the membership it counted with (both while joint): checked against the
    /// durable logs the checker sees, independently of the core's own counting.
    func checkCommitQuorum(_ i: Int, _ before: CommitWatch, _ after: RaftCore) {
        guard before.leader, after.term == before.term, after.commitIndex > before.commit else { return }
        let index = after.commitIndex
        guard let term = try? after.term(at: index) else { return }
        checker.checkCommitQuorum(leader: i, index: index, term: term, membership: before.membership)
    }
}
