// Membership changes and leadership transfers: proposing them, and answering their callers once
// they are committed (or the transfer's target leads).
extension NodeLoop {
    /// A caller waiting for a membership change or a transfer.
    struct MembershipWaiter {
        enum Goal {
            /// The entry at `index` of `term` commits; with `leaveJoint`, so does the entry that
            /// leaves the joint membership it entered.
            case committed(index: LogIndex, term: Term, leaveJoint: Bool)
            case transfer(to: NodeID)
            case caughtUp(NodeID, within: UInt64)
        }
        var goal: Goal
        var deadline: Int
        var reply: CheckedContinuation<ConfState, any Error>
    }

    func handle(_ request: RaftNode<SM>.MembershipRequest) throws(RaftError) {
        let deadline = ticks + node.configuration.membershipTimeoutTicks
        do throws(RaftError) {
            switch request.action {
            case .change(let changes, let mode):
                let r = try core.proposeMembershipChange(changes, mode: mode)
                let leaves = core.membership.isJoint && core.membership.autoLeave
                membershipWaiters.append(MembershipWaiter(
                    goal: .committed(index: r.lastIndex, term: r.term, leaveJoint: leaves), deadline: deadline, reply: request.reply))
                logger.info("membership change proposed", metadata: ["raft.changes": "\(changes)", "raft.index": "\(r.lastIndex)"])
            case .leaveJoint:
                let r = try core.leaveJointMembership()
                membershipWaiters.append(MembershipWaiter(
                    goal: .committed(index: r.lastIndex, term: r.term, leaveJoint: false), deadline: deadline, reply: request.reply))
            case .transfer(let target):
                try core.transferLeadership(to: target)
                membershipWaiters.append(MembershipWaiter(goal: .transfer(to: target), deadline: deadline, reply: request.reply))
                logger.info("leadership transfer started", metadata: ["raft.target": "\(target)"])
            case .catchUp(let member, let within):
                guard core.role == .leader else { throw notLeader() }
                guard core.membership.contains(member) else {
                    throw RaftError(.unknownPeer, "node \(member) is not a member (members: \(core.membership.members))")
                }
                membershipWaiters.append(MembershipWaiter(goal: .caughtUp(member, within: within), deadline: deadline, reply: request.reply))
            }
        } catch {
            if core.storageFailure != nil {
                request.reply.resume(throwing: error)
                throw error
            }
            request.reply.resume(throwing: addressed(error))
        }
        try checkMembershipWaiters()
    }

    func notLeader() -> RaftError {
        addressed(RaftError(.notLeader, "node \(node.id) is not the leader; send membership changes to the leader", leaderHint: core.leader))
    }

    /// A refusal with the leader's client address when it names a leader.
    func addressed(_ error: RaftError) -> RaftError {
        var e = error
        if let leader = e.leaderHint, e.leaderAddress == nil { e.leaderAddress = node.configuration.clientAddresses[leader] }
        return e
    }

    /// Answers the waiters whose goal was reached, failed or timed out. Runs after every batch,
    /// and tells the transport when the membership changed.
    func checkMembershipWaiters() throws(RaftError) {
        reportMembership()
        guard !membershipWaiters.isEmpty else { return }
        var keep: [MembershipWaiter] = []
        for w in membershipWaiters {
            switch try outcome(w.goal) {
            case .success(let conf)?:
                w.reply.resume(returning: conf)
            case .failure(let error)?:
                w.reply.resume(throwing: error)
            case nil where w.deadline <= ticks:
                w.reply.resume(throwing: RaftError(
                    .timeout,
                    "node \(node.id): \(Self.describe(w.goal)) did not complete within \(node.configuration.membershipTimeoutTicks) ticks; it may still complete (check status())",
                    leaderHint: core.leader))
            case nil:
                keep.append(w)
            }
        }
        membershipWaiters = keep
    }

    static func describe(_ goal: MembershipWaiter.Goal) -> String {
        switch goal {
        case .committed(let index, _, _): "the membership change at index \(index)"
        case .transfer(let target): "the leadership transfer to \(target)"
        case .caughtUp(let member, _): "catching up node \(member)"
        }
    }

    /// Whether `goal` was reached (with the membership then), failed, or is still open (`nil`).
    func outcome(_ goal: MembershipWaiter.Goal) throws(RaftError) -> Result<ConfState, RaftError>? {
        switch goal {
        case .committed(let index, let term, let leaveJoint):
            guard core.commitIndex >= index else { return nil }
            // The entry committed at `index` is ours only if it is of our term; a compacted one
            // was committed and applied here already, and the log's membership then is the
            // outcome.
            if let held = try core.term(at: index), held != term {
                return .failure(RaftError(.proposalDropped, "node \(node.id): the membership change at index \(index) was replaced after a leader change; it did not take effect"))
            }
            if leaveJoint && (core.membership.isJoint || core.membershipIndex > core.commitIndex) { return nil }
            return .success(core.membership)
        case .transfer(let target):
            if core.leader == target { return .success(core.membership) }
            if core.role != .leader && !core.leader.isNone {
                return .failure(RaftError(
                    .timeout, "node \(node.id): node \(core.leader) won the election, not \(target); the transfer did not complete",
                    leaderHint: core.leader))
            }
            if core.role == .leader && core.leadershipTransferTarget != target {
                return .failure(RaftError(
                    .timeout, "node \(node.id): node \(target) did not win an election within the election timeout; the transfer was aborted and node \(node.id) still leads",
                    leaderHint: node.id))
            }
            return nil
        case .caughtUp(let member, let within):
            guard core.role == .leader else { return .failure(notLeader()) }
            guard let m = core.status().members.first(where: { $0.id == member }) else {
                return .failure(RaftError(.unknownPeer, "node \(member) is no longer a member"))
            }
            // Caught up means it answers: the leader found where its log matches and streams to
            // it (replicate), not merely a short log the silent node was never sent.
            return m.state == .replicate && m.match.rawValue + within >= core.lastIndex.rawValue ? .success(core.membership) : nil
        }
    }

    /// Tells the transport, and the log, when the membership this node uses changed.
    func reportMembership() {
        let current = core.membership
        // While the latest change is not committed, the membership before it still matters to
        // the transport (its members may be needed to commit the change).
        let previous = core.membershipIndex > core.commitIndex ? core.membership(at: core.membershipIndex - 1) : nil
        guard current != reportedMembership || previous != reportedPrevious else { return }
        if reportedMembership != nil && current != reportedMembership {
            logger.info("membership changed", metadata: ["raft.membership": "\(current.members)", "raft.index": "\(core.membershipIndex)"])
        }
        reportedMembership = current
        reportedPrevious = previous
        node.transport.membershipChanged(current, previous: previous, of: node.id)
    }

    func failMembershipWaiters(_ error: any Error) {
        for w in membershipWaiters { w.reply.resume(throwing: error) }
        membershipWaiters = []
    }
}
