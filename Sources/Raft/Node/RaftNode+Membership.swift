extension RaftNode {
    /// A membership request on its way to the run loop.
    struct MembershipRequest: Sendable {
        enum Action: Sendable {
            case change([MembershipChange], MembershipChangeMode)
            case leaveJoint
            case transfer(NodeID)
            /// Answer once `member`'s log is within `entries` of the leader's.
            case catchUp(NodeID, within: UInt64)
        }
        var action: Action
        var reply: CheckedContinuation<ConfState, any Error>
    }

    func membershipRequest(_ action: MembershipRequest.Action) async throws -> ConfState {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<ConfState, any Error>) in
            if !inbox.post(.membership(MembershipRequest(action: action, reply: c))) { c.resume(throwing: nodeStoppedError(id)) }
        }
    }

    /// Adds `member` as a voter and returns the membership once the change is committed.
    ///
    /// The new member first joins as a learner, is brought within
    /// ``RaftNodeConfiguration/catchUpEntries`` of the leader's log (from entries or a snapshot),
    /// and only then is promoted (thesis §4.2.1): an empty node never holds up commits while it
    /// catches up, and one that cannot be reached (not started, a wrong address) never becomes a
    /// voter a quorum needs. Only a cluster of two voters takes it as a voter at once: its quorum
    /// is two of three then, which the two old voters still make.
    /// Calling it again after a failure finishes the job: a member that is already a learner is
    /// caught up and promoted.
    ///
    /// - Throws: ``RaftError/Code/notLeader`` (with the hint and its address) off the leader;
    ///   ``RaftError/Code/invalidArgument`` when it is a voter already, or for a zero id;
    ///   ``RaftError/Code/membershipChangeInProgress`` while another change is unfinished;
    ///   ``RaftError/Code/leadershipTransferInProgress``; ``RaftError/Code/timeout`` when a step
    ///   did not complete within ``RaftNodeConfiguration/membershipTimeoutTicks`` (it may still
    ///   complete: check ``status()``); ``RaftError/Code/proposalDropped`` when a leader change
    ///   lost a step; ``RaftError/Code/stopped``.
    @discardableResult
    public func addVoter(_ member: NodeID, address: String = "") async throws -> ConfState {
        let status = try await status().raft
        let membership = status.membership
        if membership.voters.contains(member) {
            throw RaftError(.invalidArgument, "node \(member) is a voter already")
        }
        if !membership.learners.contains(member) {
            if membership.voters.count == 2 && !membership.isJoint && status.role == .leader {
                return try await changeMembership([.addVoter(member, address: address)])
            }
            try await changeMembership([.addLearner(member, address: address)])
        }
        _ = try await membershipRequest(.catchUp(member, within: configuration.catchUpEntries))
        return try await changeMembership([.promote(member)])
    }

    /// Adds `member` as a learner: it receives the log and snapshots, never votes, and counts
    /// for no quorum. Returns the membership once the change is committed. Throws as
    /// ``changeMembership(_:mode:)``.
    @discardableResult
    public func addLearner(_ member: NodeID, address: String = "") async throws -> ConfState {
        try await changeMembership([.addLearner(member, address: address)])
    }

    /// Makes learner `member` a voter, once its log is within
    /// ``RaftNodeConfiguration/catchUpEntries`` of the leader's. Returns the membership once the
    /// change is committed. Throws as ``addVoter(_:address:)``.
    @discardableResult
    public func promote(_ member: NodeID) async throws -> ConfState {
        _ = try await membershipRequest(.catchUp(member, within: configuration.catchUpEntries))
        return try await changeMembership([.promote(member)])
    }

    /// Removes `member` (voter or learner). Returns the membership once the change is committed.
    /// A leader that removes itself leads until then, and then hands over and steps down.
    /// Throws as ``changeMembership(_:mode:)``, and ``RaftError/Code/invalidArgument`` for the
    /// last voter.
    @discardableResult
    public func remove(_ member: NodeID) async throws -> ConfState {
        try await changeMembership([.remove(member)])
    }

    /// Carries out several changes at once (replacing a voter, growing from three voters to
    /// five): in one step when at most one voter changes, through joint consensus otherwise
    /// (see ``MembershipChangeMode``). Returns the membership once the change is complete: for
    /// a joint change left automatically, once the entry that leaves it is committed too.
    ///
    /// New voters join as voters at once: to bring an empty node in without stalling commits,
    /// add it as a learner first (``addLearner(_:address:)``), then promote it in the change.
    ///
    /// - Throws, changing nothing on a refusal: ``RaftError/Code/notLeader`` (with the hint and
    ///   its address) off the leader; ``RaftError/Code/invalidArgument`` and
    ///   ``RaftError/Code/unknownPeer`` for changes that cannot apply
    ///   (``ConfState/applying(_:mode:)``); ``RaftError/Code/membershipChangeInProgress`` while
    ///   another change is unfinished; ``RaftError/Code/leadershipTransferInProgress``; and, once
    ///   proposed, ``RaftError/Code/proposalDropped`` if a leader change lost it,
    ///   ``RaftError/Code/timeout`` after ``RaftNodeConfiguration/membershipTimeoutTicks`` (it
    ///   may still complete), ``RaftError/Code/stopped``.
    @discardableResult
    public func changeMembership(_ changes: [MembershipChange], mode: MembershipChangeMode = .automatic) async throws -> ConfState {
        try await membershipRequest(.change(changes, mode))
    }

    /// Proposes the entry that completes a joint change made with `autoLeave: false`, and
    /// returns the membership once it is committed.
    @discardableResult
    public func leaveJointMembership() async throws -> ConfState {
        try await membershipRequest(.leaveJoint)
    }

    /// Hands leadership to voter `target` (thesis §3.10) and returns once `target` leads (as far
    /// as this node knows). Meanwhile this node refuses proposals with
    /// ``RaftError/Code/leadershipTransferInProgress``.
    ///
    /// - Throws: ``RaftError/Code/notLeader`` off the leader; ``RaftError/Code/invalidArgument``
    ///   for this node itself or a learner; ``RaftError/Code/unknownPeer`` for a node that is
    ///   not a member; ``RaftError/Code/membershipChangeInProgress``; ``RaftError/Code/timeout``
    ///   when the target did not win within an election timeout (the transfer is aborted and
    ///   this node goes on leading, unless someone else won); ``RaftError/Code/stopped``.
    public func transferLeadership(to target: NodeID) async throws {
        _ = try await membershipRequest(.transfer(target))
    }
}
