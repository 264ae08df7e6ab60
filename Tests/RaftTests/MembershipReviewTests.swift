import Testing

@testable import Raft

/// Review of issue 8 (membership changes, leadership transfer): each test shows one problem
/// found in review and fails until it is fixed.
@Suite("Issue 8 review")
struct MembershipReviewTests {
    static func leaseConfig(_ id: NodeID) -> RaftConfiguration {
        paperConfig(id) {
            $0.preVote = true
            $0.checkQuorum = true
            $0.readLease = ReadLease(maxClockDrift: 0.1)
        }
    }

    /// A three-node cluster with lease reads on, past the start-up window, with an elected
    /// leader whose lease holds. Returns the net and the leader's id.
    static func leaseCluster() throws -> (TestNet, NodeID) {
        let net = TestNet(try [1, 2, 3].map { try TestNode(NodeID(rawValue: $0), config: leaseConfig(NodeID(rawValue: $0))) })
        // Start-up window (a node with lease reads on ignores votes for an election timeout).
        for _ in 0..<10 { for id in [1, 2, 3] as [NodeID] { try net[id].core.tick() } }
        try net.stabilize()
        var leader = ([1, 2, 3] as [NodeID]).first { net[$0].core.role == .leader }
        if leader == nil {
            #expect(try net[1].core.campaign())
            try net.stabilize()
            leader = 1
        }
        let l = try #require(leader)
        #expect(net[l].core.role == .leader)
        // A few heartbeat rounds so the lease is fresh.
        for _ in 0..<3 {
            try net[l].core.tick()
            try net.stabilize()
        }
        #expect(net[l].core.leaseReadIndex != nil)
        return (net, l)
    }

    /// RaftCore+Transfer.swift (`tickTransfer`/`abortLeadershipTransfer`) with
    /// RaftCore+ReadIndex.swift (`leaseHolds`): once a transfer is aborted the leader answers
    /// lease reads again, but a `timeoutNow` it sent during the transfer may still arrive. Its
    /// target then campaigns with `leadershipTransfer` set, which makes the voters ignore the
    /// very lease the old leader relies on: a new leader is elected (and commits) while the old
    /// one still serves reads on its lease, a stale read.
    @Test("an aborted transfer's late timeoutNow elects a leader while the old one reads on its lease")
    func abortedTransferBreaksLease() throws {
        // init: a leader with a fresh lease
        let (net, l) = try Self.leaseCluster()
        let others = ([1, 2, 3] as [NodeID]).filter { $0 != l }
        let (voter, target) = (others[0], others[1])

        // act 1: transfer to an up-to-date target; every timeoutNow is delayed (kept aside)
        try net[l].core.transferLeadership(to: target)
        var delayed: [Message] = []
        net.drop = { m in
            if case .timeoutNow = m.kind { return true }
            return false
        }
        try net.flush()
        delayed += net.inFlight.filter { if case .timeoutNow = $0.kind { true } else { false } }
        #expect(!delayed.isEmpty)
        #expect(net[l].core.leaseReadIndex == nil)  // the leader stops lease reads: right

        // act 2: an election timeout without the target winning aborts the transfer; the
        // heartbeats keep flowing to both followers (only the timeoutNows are late)
        for _ in 0..<10 {
            try net[l].core.tick()
            try net.flush()
            delayed += net.inFlight.filter { if case .timeoutNow = $0.kind { true } else { false } }
            try net.stabilize()
        }
        #expect(net[l].core.leadershipTransferTarget == .none)
        // The fix: once it sent timeoutNow, the leader answers no lease read for the rest of its
        // term (reads fall back to a heartbeat round), aborted transfer or not.
        #expect(net[l].core.leaseReadIndex == nil)

        // act 3: the last timeoutNow arrives now; the target's vote request reaches the voter,
        // which heard from the leader a tick ago (inside the lease it granted)
        net.drop = { m in m.to == l || m.from == l }
        let late = try #require(delayed.last)
        try net[target].core.step(late)
        try net.stabilize()

        // check: at most one of them may act as leader: a new leader of a later term exists,
        // so the old one must not answer reads on its lease
        let newLeaderElected = net[target].core.role == .leader && net[target].core.term > net[l].core.term
        #expect(newLeaderElected)
        if newLeaderElected {
            // the new leader commits a write the old one's lease read would miss
            try net[target].core.propose(commands: [Array("w".utf8)])
            try net.stabilize()
            #expect(net[target].core.commitIndex > net[l].core.commitIndex)
            #expect(net[l].core.leaseReadIndex == nil, "node \(l) serves lease reads at \(net[l].core.leaseReadIndex!) while node \(target) leads term \(net[target].core.term) and committed \(net[target].core.commitIndex) with node \(voter)")
        }
    }

    /// RaftCore+Membership.swift (`MembershipHistory.conf(at:)`) with NodeLoop+Snapshots.swift
    /// (`core.membership(at:)`): a node started with an empty membership (waiting to be added)
    /// receives the log from index 1, but the membership in force below its first membership
    /// entry (the cluster's bootstrap membership) is in no entry. `membership(at:)` answers
    /// `.empty` for those indexes instead of "unknown" (`nil`), so a snapshot the node takes
    /// there records an empty membership; a follower that later installs it from this node
    /// (once it leads) uses an empty membership: it counts itself no voter and cannot campaign.
    @Test("a joining node reports an empty membership for indexes below its first membership entry")
    func joiningNodeMembershipBelowFirstChange() throws {
        // init: node 4, empty membership; the leader's log: 1-2 commands, 3 adds 4 as learner
        let node = try TestNode(4, voters: [])
        let added = ConfState(voters: [1, 2, 3], learners: [4])
        let log = entries(terms(1, 1)) + [ThesisMembershipTests.membershipEntry(3, term: 1, added)]

        // act
        try node.receive(appendMsg(from: 1, to: 4, term: 1, prev: (0, 0), entries: log, commit: 3))

        // check: the membership at index 2 was {1,2,3}; this node does not know it, and must
        // not claim it was empty (a snapshot at 2 would record that)
        #expect(node.core.membership == added)
        #expect(node.core.appliedIndex >= 2 || node.core.commitIndex >= 2)
        let at2 = node.core.membership(at: 2)
        #expect(at2 != ConfState.empty, "membership(at: 2) is \(String(describing: at2)): a snapshot at 2 would record no voters")
    }

    /// RaftNode+Membership.swift (`addVoter`, `membership.voters.count < 3`): on a one-voter
    /// cluster `addVoter` adds the new node as a voter at once. The doc says the learner step
    /// "protects nothing" there, but a two-voter quorum needs the new node: while it is
    /// unreachable (not started yet, a wrong address) nothing commits, not even the change
    /// itself, and since one change at a time is allowed the change cannot be undone either
    /// (`remove` is refused with `membershipChangeInProgress`). The cluster is stuck for good.
    /// Adding it as a learner first (as for three voters and more) would leave node 1 writing.
    @Test("addVoter on a one-voter cluster with the new node unreachable leaves the cluster stuck")
    func addVoterToSingleVoterCluster() async throws {
        // init: node 1 alone; node 2 is never started
        let h = NodeHarness<KVMachine>(
            ids: [1, 2], make: { _ in KVMachine() }, configure: { $0.membershipTimeoutTicks = 30 },
            openStorage: { id in MemoryLogStorage(voters: id == 1 ? [1] : []) })
        try h.start(1)
        #expect(try await h.electLeader() == 1)
        _ = try await h.propose("a=1", at: 1)
        let node = try #require(h.nodes[1])

        // act: add node 2 (times out: it never answers), then try to write and to undo
        let added = try? await h.answer { try await node.addVoter(2) }
        let wrote = try? await h.propose("b=2", at: 1)
        var undoError: RaftError?
        do { _ = try await h.answer { try await node.remove(2) } } catch let e as RaftError { undoError = e }

        // check: the failed addition must not take the one-node cluster down for good
        #expect(added == nil)
        #expect(wrote != nil || undoError == nil, "node 1 can neither write nor remove node 2: \(undoError.map { "\($0.code): \($0.message)" } ?? "")")
        await h.stopAll()
    }

    /// MemoryLogStorage.swift / FileLogStorage.swift (`createSnapshot(at:confState: = nil, data:)`,
    /// `beginSnapshot`): with the membership now in the log, the default `nil` records the
    /// storage's own membership (the bootstrap one, or the last installed snapshot's), not the
    /// one in force at `index`. A shell driving `RaftCore` that snapshots and compacts with the
    /// default call restarts with a membership older than the one its log had: it counts
    /// quorums over voters the rest of the cluster no longer uses.
    @Test("createSnapshot's default membership is the bootstrap one, not the one at the index")
    func createSnapshotDefaultMembership() throws {
        // init: a leader of {1,2,3} that committed the addition of voter 4
        let node = try stableLeader()
        let r = try node.core.proposeMembershipChange([.addVoter(4, address: "")])
        try node.drain()
        for p: NodeID in [2, 3] { try node.receive(appendAck(from: p, to: 1, term: node.core.term, index: r.lastIndex)) }
        #expect(node.core.commitIndex >= r.lastIndex)
        let applied = node.core.appliedIndex
        #expect(applied >= r.lastIndex)

        // act: snapshot and compact with the documented default, then restart
        try node.storage.createSnapshot(at: applied, data: [])
        try node.storage.compact(upTo: applied)
        let restarted = try RaftCore(configuration: paperConfig(1), storage: node.storage)

        // check
        #expect(node.storage.snapshotMetadata().confState == node.core.membership(at: applied))
        #expect(restarted.membership == ConfState(voters: [1, 2, 3, 4]))
    }
}
