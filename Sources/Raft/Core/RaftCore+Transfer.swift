extension RaftCore {
    /// Hands leadership to `target` (thesis §3.10): the leader stops taking proposals, brings the
    /// target's log up to date, then tells it to campaign at once (``Message/Kind/timeoutNow``):
    /// its vote requests bypass PreVote and the leader lease of the voters, since the leader
    /// itself asked. Once it sends `timeoutNow` the leader answers no lease read for the rest of
    /// its term, aborted transfer or not (the message may arrive late, and the voters then elect
    /// someone within its lease): reads fall back to a heartbeat round. The transfer is aborted, and proposals are taken again,
    /// after an election timeout without the target winning.
    ///
    /// Asking again for the same target changes nothing; asking for another one replaces the
    /// pending transfer.
    ///
    /// - Throws, changing nothing: ``RaftError/Code/notLeader`` (with the hint) off the leader;
    ///   ``RaftError/Code/invalidArgument`` when `target` is this node;
    ///   ``RaftError/Code/unknownPeer`` when it is not a member; ``RaftError/Code/invalidArgument``
    ///   when it is a learner (promote it first); ``RaftError/Code/membershipChangeInProgress``
    ///   while a membership change is unfinished; a storage failure.
    public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
        if let storageFailure { throw storageFailure }
        guard role == .leader else {
            throw RaftError(.notLeader, "node \(id) is not the leader; ask the leader to transfer leadership", leaderHint: leader)
        }
        if target == id { throw RaftError(.invalidArgument, "node \(id) already leads; there is nothing to transfer") }
        guard tracker.contains(target) else {
            throw RaftError(.unknownPeer, "node \(target) is not a member (members: \(tracker.members)); leadership goes to voters only")
        }
        guard tracker.isVoter(target) else {
            throw RaftError(.invalidArgument, "node \(target) is a learner, which cannot lead: promote it to voter first")
        }
        if leadTransferee == target { return }
        if membershipChangePending {
            throw RaftError(
                .membershipChangeInProgress,
                "node \(id): a membership change is unfinished (entry \(memberships.currentIndex), commit index \(log.committed)); transfer leadership once it completes")
        }
        leadTransferee = target
        transferElapsed = 0
        try guarded { (c) throws(RaftError) in try c.continueLeadershipTransfer() }
    }

    /// The target of a pending leadership transfer, or ``NodeID/none``.
    public var leadershipTransferTarget: NodeID { leadTransferee }

    /// Sends `timeoutNow` once the target holds the whole log, or an append to bring it there.
    mutating func continueLeadershipTransfer() throws(RaftError) {
        guard role == .leader, !leadTransferee.isNone, let i = tracker.slot(of: leadTransferee) else { return }
        if tracker.progress[i].match == log.lastIndex() {
            sendTimeoutNow(to: leadTransferee)
        } else {
            try maybeSendAppend(to: leadTransferee, slot: i, sendIfEmpty: true)
        }
    }

    /// Tells `target` to campaign now. From here on this leader answers no lease read in this
    /// term: the message may arrive at any time, and the voters then ignore the lease.
    mutating func sendTimeoutNow(to target: NodeID) {
        leaseForfeited = true
        send(to: target, .timeoutNow)
    }

    mutating func abortLeadershipTransfer() {
        leadTransferee = .none
        transferElapsed = 0
    }

    /// A leader's tick for a pending transfer: gives up after an election timeout.
    mutating func tickTransfer() {
        guard !leadTransferee.isNone else { return }
        transferElapsed += 1
        if transferElapsed >= config.electionTicks { abortLeadershipTransfer() }
    }

    /// A follower told by its leader to campaign at once.
    mutating func handleTimeoutNow(from: NodeID) throws(RaftError) {
        guard promotable, from == leader || leader.isNone else { return }
        electionElapsed = 0
        try startCampaign(preVote: false, transfer: true)
    }
}
