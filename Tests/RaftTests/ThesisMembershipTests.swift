import Testing

@testable import Raft

/// One test per rule of Ongaro's thesis ch. 4 (membership changes) and §3.10 (leadership
/// transfer), arranged init / act / check like the paper tests. Cores run the paper's algorithm
/// (``paperConfig``) unless a test says otherwise.
@Suite("Thesis ch. 4 and §3.10")
struct ThesisMembershipTests {
    static func membershipEntry(_ index: LogIndex, term: Term, _ conf: ConfState) -> LogEntry {
        LogEntry(term: term, index: index, kind: .membership, data: conf.encoded())
    }

    static let joint = ConfState(voters: [1, 4, 5], outgoingVoters: [1, 2, 3])

    /// A leader of term 2 whose log holds `log` (term 1) and whose no-op (the next index) every
    /// peer in `acked` acknowledged.
    static func leader(log: [LogEntry], acked: [NodeID], voters: [NodeID] = [1, 2, 3]) throws -> TestNode {
        let node = try TestNode(1, voters: voters, log: log, hardState: HardState(term: 1))
        try elect(node, votesFrom: Array(node.core.voters.filter { $0 != 1 }))
        for p in acked { try node.receive(appendAck(from: p, to: 1, term: 2, index: node.core.lastIndex)) }
        return node
    }

    // MARK: §4.1 Cluster membership changes

    /// §4.1: a server uses the latest configuration in its log, whether or not that entry is
    /// committed.
    @Test("§4.1 a follower uses a membership as soon as it appends it")
    func followerUsesAppendedMembership() throws {
        // init
        let node = try TestNode(2)
        let change = ConfState(voters: [1, 2, 3, 4])

        // act: the entry arrives, the commit index stays below it
        try node.receive(appendMsg(from: 1, to: 2, term: 1, prev: (0, 0), entries: [Self.membershipEntry(1, term: 1, change)]))

        // check
        #expect(node.core.membership == change)
        #expect(node.core.commitIndex == 0)
        #expect(node.core.membershipChangePending)
    }

    /// §4.1: a configuration entry removed from the log (a new leader overwrote it) stops being
    /// used: the server falls back to the previous configuration in its log.
    @Test("§4.1 a truncated membership entry is undone")
    func truncatedMembershipIsUndone() throws {
        // init: node 2 holds an uncommitted change at index 2 from a leader of term 1
        let change = ConfState(voters: [1, 2, 3, 4])
        let node = try TestNode(2, log: entries(terms(1)) + [Self.membershipEntry(2, term: 1, change)], hardState: HardState(term: 1))
        #expect(node.core.membership == change)

        // act: the leader of term 2 replaces index 2
        try node.receive(appendMsg(from: 3, to: 2, term: 2, prev: (1, 1), entries: entries(terms(2), from: 2)))

        // check
        #expect(node.core.membership == ConfState(voters: [1, 2, 3]))
        #expect(node.core.voters == [1, 2, 3])
    }

    /// §4.1: a single-server change commits on a majority of the new configuration.
    @Test("§4.1 adding a voter commits on a majority of the new voters")
    func singleChangeNeedsNewMajority() throws {
        // init
        let node = try stableLeader()
        let receipt = try node.core.proposeMembershipChange([.addVoter(4, address: "")])
        try node.drain()

        // act 1: one old voter acknowledges: 2 of the 4 new voters
        try node.receive(appendAck(from: 2, to: 1, term: 1, index: receipt.lastIndex))
        // check 1
        #expect(node.core.commitIndex < receipt.lastIndex)

        // act 2: the new voter acknowledges: 3 of 4
        try node.receive(appendAck(from: 4, to: 1, term: 1, index: receipt.lastIndex))
        // check 2
        #expect(node.core.commitIndex == receipt.lastIndex)
        #expect(!node.core.membershipChangePending)
    }

    /// §4.1: a leader starts no change until the previous one is committed.
    @Test("§4.1 a second change is refused while one is pending")
    func oneChangeAtATime() throws {
        // init
        let node = try stableLeader()
        try node.core.proposeMembershipChange([.addLearner(4, address: "")])
        let last = node.core.lastIndex

        // act
        let error = #expect(throws: RaftError.self) { try node.core.proposeMembershipChange([.addLearner(5, address: "")]) }

        // check
        #expect(error?.code == .membershipChangeInProgress)
        #expect(node.core.lastIndex == last)
        #expect(node.core.membership.learners == [4])
    }

    /// §4.1 (the correction to single-server changes, raft-dev 2015): a new leader proposes no
    /// change until an entry of its own term has committed.
    @Test("§4.1 a new leader commits an entry of its term before changing the membership")
    func newLeaderCommitsFirst() throws {
        // init: elected, no-op not yet acknowledged
        let node = try Self.leader(log: entries(terms(1)), acked: [])

        // act 1
        let early = #expect(throws: RaftError.self) { try node.core.proposeMembershipChange([.addVoter(4, address: "")]) }
        // check 1
        #expect(early?.code == .membershipChangeInProgress)

        // act 2: the no-op commits
        try node.receive(appendAck(from: 2, to: 1, term: 2, index: node.core.lastIndex))
        // check 2
        #expect(throws: Never.self) { try node.core.proposeMembershipChange([.addVoter(4, address: "")]) }
    }

    // MARK: §4.2 Availability

    /// §4.2.1: a new server joins without a vote: it receives entries but counts for no quorum
    /// and is asked for no vote.
    @Test("§4.2.1 a learner receives the log but counts for no quorum")
    func learnerDoesNotCount() throws {
        // init: a leader of {1, 2, 3} with learner 4, whose change committed
        let node = try stableLeader()
        let r = try node.core.proposeMembershipChange([.addLearner(4, address: "")])
        let out = try node.drain()
        try node.receive(appendAck(from: 2, to: 1, term: 1, index: r.lastIndex))
        #expect(node.core.commitIndex == r.lastIndex)
        let p = try #require(try node.core.propose(Array("x".utf8)))
        try node.drain()

        // act: only the learner acknowledges
        try node.receive(appendAck(from: 4, to: 1, term: 1, index: p.lastIndex))

        // check
        #expect(out.messages(to: 4).contains { $0.appendEntries != nil })
        #expect(node.core.commitIndex < p.lastIndex)
        #expect(node.core.status().members.first { $0.id == 4 }?.role == .learner)
        #expect(node.core.status().members.first { $0.id == 4 }?.match == p.lastIndex)
    }

    /// §4.2.1: a learner never campaigns.
    @Test("§4.2.1 a learner never campaigns")
    func learnerNeverCampaigns() throws {
        // init
        let node = try TestNode(4, voters: [], log: [Self.membershipEntry(1, term: 1, ConfState(voters: [1, 2, 3], learners: [4]))])

        // act
        let started = try node.core.campaign()
        for _ in 0..<100 { try node.core.tick() }

        // check
        #expect(!started)
        #expect(node.core.role == .follower)
        #expect(try node.drain().messages.isEmpty)
    }

    /// §4.2.2: a leader removed from the configuration keeps leading until the removal commits,
    /// not counting itself, then steps down.
    @Test("§4.2.2 a removed leader steps down once its removal commits")
    func removedLeaderStepsDown() throws {
        // init
        let node = try stableLeader()
        let r = try node.core.proposeMembershipChange([.remove(1)])
        try node.drain()

        // act 1: one of the two remaining voters acknowledges
        try node.receive(appendAck(from: 2, to: 1, term: 1, index: r.lastIndex))
        // check 1: still leading, not committed (itself not counted)
        #expect(node.core.role == .leader)
        #expect(node.core.commitIndex < r.lastIndex)

        // act 2
        let out = try node.receive(appendAck(from: 3, to: 1, term: 1, index: r.lastIndex))
        // check 2: committed, stepped down, and told a caught-up voter to campaign
        #expect(node.core.commitIndex == r.lastIndex)
        #expect(node.core.role == .follower)
        #expect(out.messages.contains { $0.kind == .timeoutNow && ($0.to == 2 || $0.to == 3) })
        #expect(try !node.core.campaign())
    }

    /// §4.2.3: a server that hears from a current leader ignores vote requests of a higher term
    /// (with CheckQuorum), so a removed server cannot depose the leader.
    @Test("§4.2.3 a removed server's vote requests do not disrupt the cluster")
    func removedServerCannotDisrupt() throws {
        // init: follower 2 of leader 1 in term 1, with CheckQuorum (the leader lease)
        let node = try TestNode(2, config: paperConfig(2) { $0.checkQuorum = true })
        try node.receive(heartbeatMsg(from: 1, to: 2, term: 1))

        // act: removed node 3 asks for a vote in term 5
        let out = try node.receive(voteRequest(from: 3, to: 2, term: 5, lastIndex: 9, lastTerm: 1))

        // check
        #expect(node.core.term == 1)
        #expect(node.core.leader == 1)
        #expect(out.messages.isEmpty)
    }

    // MARK: §4.3 Arbitrary changes using joint consensus

    /// §4.3: while joint, an election needs a majority of the old and of the new voters.
    @Test("§4.3 a joint election needs both majorities")
    func jointElectionNeedsBothMajorities() throws {
        // init: node 1 in the joint membership old {1, 2, 3}, new {1, 4, 5}
        let node = try TestNode(1, log: [Self.membershipEntry(1, term: 1, Self.joint)], hardState: HardState(term: 1))
        try node.core.campaign()
        let out = try node.drain()
        #expect(Set(out.messages.filter { $0.voteRequest != nil }.map(\.to)) == [2, 3, 4, 5])

        // act 1: the old voters grant
        for p: NodeID in [2, 3] { try node.receive(voteResponse(from: p, to: 1, term: 2, granted: true)) }
        // check 1
        #expect(node.core.role == .candidate)

        // act 2: one new voter grants
        try node.receive(voteResponse(from: 4, to: 1, term: 2, granted: true))
        // check 2
        #expect(node.core.role == .leader)
    }

    /// §4.3: while joint, an entry commits only on a majority of both voter sets.
    @Test("§4.3 a joint commit needs both majorities")
    func jointCommitNeedsBothMajorities() throws {
        // init: the leader of term 2 in the joint membership (committed at index 1)
        let node = try TestNode(1, log: [Self.membershipEntry(1, term: 1, Self.joint)], hardState: HardState(term: 1, commit: 1))
        try elect(node, votesFrom: [2, 4])
        let noop = node.core.lastIndex

        // act 1: the new voters acknowledge
        for p: NodeID in [4, 5] { try node.receive(appendAck(from: p, to: 1, term: 2, index: noop)) }
        // check 1
        #expect(node.core.commitIndex < noop)

        // act 2: one old voter acknowledges
        try node.receive(appendAck(from: 2, to: 1, term: 2, index: noop))
        // check 2
        #expect(node.core.commitIndex >= noop)
    }

    /// §4.3: once the entry entering the joint membership commits, the leader appends the one
    /// that leaves it (automatically, unless asked to wait).
    @Test("§4.3 the leader leaves a joint membership once it commits")
    func leaderLeavesJointAutomatically() throws {
        // init
        let node = try stableLeader()
        let r = try node.core.proposeMembershipChange([.addVoter(4, address: ""), .remove(3)])
        try node.drain()
        #expect(node.core.membership.isJoint)

        // act: a majority of old {1, 2, 3} and of new {1, 2, 4}
        for p: NodeID in [2, 4] { try node.receive(appendAck(from: p, to: 1, term: 1, index: r.lastIndex)) }

        // check
        #expect(node.core.commitIndex == r.lastIndex)
        #expect(node.core.membership == ConfState(voters: [1, 2, 4]))
        #expect(node.core.membershipIndex == r.lastIndex + 1)
        #expect(node.core.membershipChangePending)
    }

    // MARK: §3.10 Leadership transfer

    /// §3.10: the leader brings the target up to date, then tells it to time out now; the
    /// target campaigns at once, without PreVote, and the voters answer it although they heard
    /// from the leader within their election timeout.
    @Test("§3.10 a transfer sends timeoutNow once the target is up to date")
    func transferSendsTimeoutNowWhenCaughtUp() throws {
        // init: target 3 is one entry behind
        let node = try stableLeader()
        let p = try #require(try node.core.propose(Array("x".utf8)))
        try node.drain()
        try node.receive(appendAck(from: 2, to: 1, term: 1, index: p.lastIndex))

        // act 1
        try node.core.transferLeadership(to: 3)
        let before = try node.drain()
        // check 1: no timeoutNow yet; proposals refused
        #expect(!before.messages.contains { $0.kind == .timeoutNow })
        #expect((try? node.core.propose(Array("y".utf8))) == nil)

        // act 2: the target catches up
        let after = try node.receive(appendAck(from: 3, to: 1, term: 1, index: p.lastIndex))
        // check 2
        #expect(after.messages.contains { $0.kind == .timeoutNow && $0.to == 3 })
    }

    @Test("§3.10 the target of a transfer campaigns at once and voters in a lease grant it")
    func targetCampaignsAndIsGranted() throws {
        // init: followers 2 and 3 of leader 1 with PreVote and CheckQuorum
        let config: (NodeID) -> RaftConfiguration = { id in paperConfig(id) { $0.preVote = true; $0.checkQuorum = true } }
        let target = try TestNode(2, config: config(2))
        let voter = try TestNode(3, config: config(3))
        for n in [target, voter] { try n.receive(heartbeatMsg(from: 1, to: n.id, term: 1)) }

        // act
        let out = try target.receive(Message(from: 1, to: 2, term: 1, kind: .timeoutNow))
        let request = try #require(out.messages.first { $0.to == 3 })
        let answer = try voter.receive(request)

        // check
        #expect(target.core.role == .candidate)
        #expect(request.voteRequest?.leadershipTransfer == true)
        #expect(answer.messages.first?.voteGranted == true)
    }

    /// §3.10: a transfer that does not complete within an election timeout is aborted; the
    /// leader takes proposals again.
    @Test("§3.10 a transfer is aborted after an election timeout")
    func transferTimesOut() throws {
        // init
        let node = try stableLeader()
        try node.core.transferLeadership(to: 3)
        try node.drain()

        // act
        for _ in 0..<10 { try node.core.tick() }

        // check
        #expect(node.core.leadershipTransferTarget == .none)
        #expect(node.core.role == .leader)
        #expect(throws: Never.self) { try node.core.propose(Array("z".utf8)) }
    }

    // MARK: Snapshots

    /// The membership travels in snapshot metadata: a follower installing a snapshot uses its
    /// membership, and a snapshot taken at an index records the membership in force there.
    @Test("a snapshot carries the membership at its index")
    func snapshotCarriesMembership() throws {
        // init
        let node = try TestNode(4, voters: [])
        let conf = ConfState(voters: [1, 2, 3], learners: [4], addresses: [4: "h:4"])
        let snap = Snapshot(metadata: SnapshotMetadata(index: 10, term: 2, confState: conf), data: [1])

        // act
        try node.receive(Message(from: 1, to: 4, term: 2, kind: .installSnapshot(InstallSnapshot(snapshot: snap))))

        // check
        #expect(node.core.membership == conf)
        #expect(node.core.membership(at: 10) == conf)
        #expect(node.core.membership(at: 9) == nil)
    }
}
