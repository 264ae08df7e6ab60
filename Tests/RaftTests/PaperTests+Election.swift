import Testing

@testable import Raft

// MARK: - §5.2 Leader election

extension PaperTests {
    /// Ticks `node` until its role changes or `limit` ticks passed; returns the ticks used.
    static func tickUntilRoleChanges(_ node: TestNode, limit: Int = 100) throws -> Int {
        let start = node.core.role
        var n = 0
        while node.core.role == start && n < limit {
            try node.core.tick()
            n += 1
        }
        return n
    }

    /// §5.2: a follower that receives no communication over an election timeout starts an
    /// election: it increments its term, becomes candidate, votes for itself (durably) and
    /// sends RequestVote, carrying its last log index and term, to every other server.
    @Test("§5.2 a follower that hears nothing for an election timeout starts an election")
    func followerTimesOutAndCampaigns() throws {
        // init: a follower of term 1 holding [1, 1]
        let node = try TestNode(1, log: entries(terms(1, 1)), hardState: HardState(term: 1))

        // act
        let ticks = try Self.tickUntilRoleChanges(node)
        let out = try node.drain()

        // check
        #expect((10..<20).contains(ticks))
        #expect(node.core.role == .candidate)
        #expect(node.core.term == 2)
        #expect(node.core.vote == 1)
        #expect(out.hardStates.last == HardState(term: 2, vote: 1, commit: .zero))
        let requests = out.afterPersist.filter { $0.voteRequest != nil }
        #expect(Set(requests.map(\.to)) == [2, 3])
        #expect(requests.count == 2)
        for r in requests {
            #expect(r.term == 2)
            #expect(r.voteRequest == RequestVote(lastLogIndex: 2, lastLogTerm: 1))
        }
        // The vote is announced only after it is durable.
        #expect(!out.immediate.contains { $0.voteRequest != nil })
    }

    /// §5.2 with PreVote (thesis §9.6): at the timeout a follower first becomes pre-candidate,
    /// asking for pre-votes for the next term without changing its own term or vote; once a
    /// majority would vote for it, it becomes candidate of that term and asks for real votes.
    @Test("§5.2 with PreVote a timed-out follower becomes pre-candidate, then candidate")
    func preVoteThenCandidate() throws {
        // init: default configuration (PreVote and CheckQuorum on)
        var cfg = RaftConfiguration(id: 1)
        cfg.randomSeed = 3
        let node = try TestNode(1, log: entries(terms(1)), hardState: HardState(term: 1), config: cfg)

        // act 1: the election timeout elapses
        let ticks = try Self.tickUntilRoleChanges(node)
        let pre = try node.drain()

        // check 1
        #expect((10..<20).contains(ticks))
        #expect(node.core.role == .preCandidate)
        #expect(node.core.term == 1)
        #expect(node.core.vote == .none)
        #expect(pre.hardStates.isEmpty)
        let asks = pre.messages.filter { $0.preVoteRequest != nil }
        #expect(Set(asks.map(\.to)) == [2, 3])
        #expect(asks.allSatisfy { $0.term == 2 && $0.preVoteRequest == RequestVote(lastLogIndex: 1, lastLogTerm: 1) })

        // act 2: node 2 would vote for it
        let out = try node.receive(
            Message(from: 2, to: 1, term: 2, kind: .preVoteResponse(RequestVoteResponse(granted: true))))

        // check 2
        #expect(node.core.role == .candidate)
        #expect(node.core.term == 2)
        #expect(node.core.vote == 1)
        #expect(out.hardStates.last?.term == 2)
        let requests = out.afterPersist.filter { $0.voteRequest != nil }
        #expect(Set(requests.map(\.to)) == [2, 3])
        #expect(requests.allSatisfy { $0.term == 2 })
    }

    /// One election: cluster size, who grants and who refuses, and the role that results.
    struct ElectionCase: Sendable, CustomTestStringConvertible {
        var size: UInt64
        var granted: [NodeID]
        var refused: [NodeID]
        var expected: RaftCore.Role
        var testDescription: String { "\(size) nodes, granted by \(granted), refused by \(refused) -> \(expected)" }
    }

    /// §5.2: a candidate wins an election if it receives votes from a majority of the servers
    /// (itself included) in the same term, and stays candidate while the outcome is open. (When
    /// a majority refused, this implementation steps down to follower at once instead of waiting
    /// for its timeout, as etcd does; the paper's candidate would simply time out.)
    @Test("§5.2 a candidate wins with a majority of votes", arguments: [
        ElectionCase(size: 1, granted: [], refused: [], expected: .leader),
        ElectionCase(size: 3, granted: [2], refused: [], expected: .leader),
        ElectionCase(size: 3, granted: [2, 3], refused: [], expected: .leader),
        ElectionCase(size: 3, granted: [], refused: [2], expected: .candidate),
        ElectionCase(size: 3, granted: [], refused: [2, 3], expected: .follower),
        ElectionCase(size: 5, granted: [2, 3], refused: [], expected: .leader),
        ElectionCase(size: 5, granted: [2], refused: [], expected: .candidate),
        ElectionCase(size: 5, granted: [2], refused: [3, 4], expected: .candidate),
        ElectionCase(size: 5, granted: [], refused: [2, 3], expected: .candidate),
        ElectionCase(size: 5, granted: [2], refused: [3, 4, 5], expected: .follower),
    ])
    func candidateWinsWithMajority(_ c: ElectionCase) throws {
        // init
        let voters = (1...c.size).map { NodeID(rawValue: $0) }
        let node = try TestNode(1, voters: voters)
        try node.core.campaign()
        try node.drain()

        // act
        for p in c.granted { try node.receive(voteResponse(from: p, to: 1, term: 1, granted: true)) }
        for p in c.refused { try node.receive(voteResponse(from: p, to: 1, term: 1, granted: false)) }

        // check
        #expect(node.core.role == c.expected)
        #expect(node.core.term == 1)
        #expect(node.core.leader == (c.expected == .leader ? 1 : .none))
    }

    /// §5.2: once a candidate wins it becomes leader and sends AppendEntries to every other
    /// server to establish its authority; here they carry the new leader's no-op (§8), which a
    /// leader of a one-node cluster commits at once.
    @Test("§5.2 a new leader announces itself with AppendEntries to every server", arguments: [1, 3, 5] as [UInt64])
    func newLeaderSendsAppends(size: UInt64) throws {
        // init
        let voters = (1...size).map { NodeID(rawValue: $0) }
        let node = try TestNode(1, voters: voters, log: entries(terms(1, 1)), hardState: HardState(term: 1))
        try node.core.campaign()
        var out = try node.drain()

        // act: just enough votes
        for p in voters.dropFirst().prefix(voters.count / 2) {
            let d = try node.receive(voteResponse(from: p, to: 1, term: 2, granted: true))
            out.immediate += d.immediate
            out.afterPersist += d.afterPersist
        }

        // check
        try #require(node.core.role == .leader)
        let noop = LogEntry(term: 2, index: 3, kind: .noop)
        #expect(node.core.lastIndex == 3)
        for p in voters.dropFirst() {
            let appends = out.messages(to: p).compactMap(\.appendEntries)
            #expect(appends.count == 1, "to \(p)")
            #expect(appends.first?.prevLogIndex == 2)
            #expect(appends.first?.prevLogTerm == 1)
            #expect(appends.first?.entries == [noop])
        }
        if size == 1 { #expect(node.core.commitIndex == 3) }
    }

    /// §5.2: a candidate that receives AppendEntries from a leader whose term is at least as
    /// large as its own recognizes the leader and returns to follower (keeping its term and its
    /// vote for itself), then handles the message as a follower.
    @Test("§5.2 a candidate hearing from a leader of its term becomes follower", arguments: ["append", "heartbeat"])
    func candidateStepsDownForLeaderOfSameTerm(kind: String) throws {
        // init: node 1 is candidate of term 2
        let node = try TestNode(1, hardState: HardState(term: 1))
        try node.core.campaign()
        try node.drain()
        try #require(node.core.role == .candidate && node.core.term == 2)
        let m =
            kind == "append"
            ? appendMsg(from: 3, to: 1, term: 2, prev: (.zero, .zero), entries: [LogEntry(term: 2, index: 1, kind: .noop)])
            : heartbeatMsg(from: 3, to: 1, term: 2)

        // act
        let out = try node.receive(m)

        // check
        #expect(node.core.role == .follower)
        #expect(node.core.leader == 3)
        #expect(node.core.term == 2)
        #expect(node.core.vote == 1)
        #expect(!out.messages(to: 3).isEmpty)
        if kind == "append" {
            #expect(try node.logTerms == terms(2))
            #expect(out.messages(to: 3).compactMap(\.appendResponse) == [AppendEntriesResponse(index: 1)])
        }
    }

    /// §5.2: if the term in a would-be leader's AppendEntries is smaller than the candidate's
    /// current term, the candidate rejects it and continues in candidate state.
    @Test("§5.2 a candidate ignores a leader of an older term and stays candidate")
    func candidateIgnoresOlderLeader() throws {
        // init: node 1 is candidate of term 3
        let node = try TestNode(1, hardState: HardState(term: 2))
        try node.core.campaign()
        try node.drain()
        try #require(node.core.role == .candidate && node.core.term == 3)

        // act: the leader of term 2 sends an entry and a heartbeat
        let out = try node.receive(
            appendMsg(from: 3, to: 1, term: 2, prev: (.zero, .zero), entries: [LogEntry(term: 2, index: 1, kind: .noop)]))
        let out2 = try node.receive(heartbeatMsg(from: 3, to: 1, term: 2))

        // check
        #expect(node.core.role == .candidate)
        #expect(node.core.term == 3)
        #expect(node.core.leader == .none)
        #expect(node.core.lastIndex == 0)
        #expect(out.persisted.isEmpty)
        #expect(!(out.messages + out2.messages).contains { $0.appendResponse.map { !$0.reject } ?? false })
    }

    /// §5.2: if a candidate neither wins nor loses (a split vote), it times out and starts a new
    /// election by incrementing its term and sending another round of RequestVotes.
    @Test("§5.2 a candidate whose election times out starts a new one in a higher term")
    func candidateRetriesOnTimeout() throws {
        // init: node 1 is candidate of term 2 and nobody answers
        let node = try TestNode(1, hardState: HardState(term: 1))
        try node.core.campaign()
        try node.drain()
        try #require(node.core.term == 2)

        // act
        var ticks = 0
        while node.core.term == 2 && ticks < 100 {
            try node.core.tick()
            ticks += 1
        }
        let out = try node.drain()

        // check
        #expect((10..<20).contains(ticks))
        #expect(node.core.role == .candidate)
        #expect(node.core.term == 3)
        #expect(node.core.vote == 1)
        let requests = out.messages.filter { $0.voteRequest != nil }
        #expect(Set(requests.map(\.to)) == [2, 3])
        #expect(requests.allSatisfy { $0.term == 3 })
    }

    /// §5.2: election timeouts are chosen randomly from a fixed interval, here
    /// `[electionTicks, 2 * electionTicks)`, afresh at each election, so that split votes are
    /// rare and resolved quickly. Checked over many seeds: every value of the interval occurs,
    /// none outside it, roughly uniformly; and a candidate's retry draws again.
    @Test("§5.2 election timeouts are randomized within [electionTicks, 2*electionTicks)")
    func electionTimeoutsRandomized() throws {
        // init
        let seeds: Range<UInt64> = 0..<1000
        var firstTimeout: [Int: Int] = [:]
        var retryTimeout: [Int: Int] = [:]
        var pairsDiffering = 0

        // act: for each seed, how long a fresh follower waits, then how long its candidacy lasts
        for seed in seeds {
            let node = try TestNode(1, config: paperConfig(1, seed: seed))
            let first = try Self.tickUntilRoleChanges(node)
            firstTimeout[first, default: 0] += 1
            var retry = 0
            while node.core.term == 1 && retry < 100 {
                try node.core.tick()
                retry += 1
            }
            retryTimeout[retry, default: 0] += 1
            if retry != first { pairsDiffering += 1 }
        }

        // check
        for histogram in [firstTimeout, retryTimeout] {
            #expect(Set(histogram.keys) == Set(10..<20), "\(histogram.sorted { $0.key < $1.key })")
            // 1,000 draws over 10 values: about 100 each.
            #expect(histogram.values.allSatisfy { (50...150).contains($0) }, "\(histogram.sorted { $0.key < $1.key })")
        }
        #expect(pairsDiffering > 800)
    }

    /// §5.2: split votes are resolved because candidates time out at different moments: two
    /// candidates splitting a four-node cluster both fail, and a later election elects exactly
    /// one leader.
    @Test("§5.2 a split vote is resolved by randomized timeouts")
    func splitVoteResolved() throws {
        // init: four nodes; 1 and 2 campaign at once, 3 votes for 1 and 4 votes for 2
        let ids: [NodeID] = [1, 2, 3, 4]
        let net = TestNet(try ids.map { id in try TestNode(id, voters: ids, config: paperConfig(id, seed: 11)) })
        try net[1].core.campaign()
        try net[2].core.campaign()
        try net.flush()
        net.inFlight.removeAll { ($0.from == 1 && $0.to == 4) || ($0.from == 2 && $0.to == 3) }
        try net.stabilize()
        try #require(ids.allSatisfy { net[$0].core.role != .leader })

        // act: time passes
        var ticks = 0
        while !ids.contains(where: { net[$0].core.role == .leader }) && ticks < 200 {
            for id in ids { try net[id].core.tick() }
            try net.stabilize()
            ticks += 1
        }

        // check
        let leaders = ids.filter { net[$0].core.role == .leader }
        #expect(leaders.count == 1)
        let leaderTerm = leaders.first.map { net[$0].core.term } ?? .zero
        #expect(leaderTerm >= 2)
        #expect(ids.allSatisfy { net[$0].core.term == leaderTerm })
        #expect(ids.allSatisfy { net[$0].core.leader == leaders.first })
    }

    /// §5.2: each server votes for at most one candidate in a given term, on a first-come,
    /// first-served basis; a repeated request from the candidate it voted for is granted again
    /// (a lost answer may be retransmitted). The vote is persisted before it is announced.
    @Test("§5.2 a server votes at most once per term, first come first served")
    func oneVotePerTerm() throws {
        // init: node 3, a follower of term 1
        let node = try TestNode(3, hardState: HardState(term: 1))

        // act
        let first = try node.receive(voteRequest(from: 1, to: 3, term: 2))
        let second = try node.receive(voteRequest(from: 2, to: 3, term: 2))
        let again = try node.receive(voteRequest(from: 1, to: 3, term: 2))

        // check
        #expect(first.afterPersist.compactMap(\.voteGranted) == [true])
        #expect(first.immediate.isEmpty)
        #expect(first.hardStates.last == HardState(term: 2, vote: 1))
        #expect(second.messages.compactMap(\.voteGranted) == [false])
        #expect(again.messages.compactMap(\.voteGranted) == [true])
        #expect(node.core.vote == 1)
        #expect(node.storage.currentHardState.vote == 1)
    }

    /// §5.2 / figure 2: votedFor is persistent state, so a server that restarts in the middle of
    /// a term still refuses to vote for a second candidate of that term.
    @Test("§5.2 the one vote per term survives a restart")
    func voteSurvivesRestart() throws {
        // init: node 3 votes for 1 in term 2, then crashes
        let before = try TestNode(3, hardState: HardState(term: 1))
        try before.receive(voteRequest(from: 1, to: 3, term: 2))
        try #require(before.storage.currentHardState == HardState(term: 2, vote: 1))

        // act: restart from the same disk; candidate 2 of term 2 asks
        var restarted = try RaftCore(configuration: paperConfig(3), storage: before.storage)
        try restarted.step(voteRequest(from: 2, to: 3, term: 2))
        let rd = try restarted.ready()

        // check
        #expect(restarted.vote == 1)
        #expect((rd.messages + rd.messagesAfterPersist).compactMap(\.voteGranted) == [false])
    }

    /// §5.2: a follower remains follower as long as it receives valid RPCs from a leader; each
    /// AppendEntries or heartbeat restarts its election timer. When they stop, it campaigns.
    @Test("§5.2 a follower that keeps hearing from its leader never campaigns")
    func followerStaysWhileHearingLeader() throws {
        // init: node 2 follows leader 1 in term 1
        let node = try TestNode(2, hardState: HardState(term: 1))
        try node.receive(appendMsg(from: 1, to: 2, term: 1, prev: (.zero, .zero)))

        // act: 30 times, nine ticks (below the minimal timeout of ten) then a heartbeat or append
        var roles: Set<RaftCore.Role> = []
        for round in 0..<30 {
            for _ in 0..<9 {
                try node.core.tick()
                roles.insert(node.core.role)
            }
            if round.isMultiple(of: 2) {
                try node.receive(heartbeatMsg(from: 1, to: 2, term: 1))
            } else {
                try node.receive(appendMsg(from: 1, to: 2, term: 1, prev: (.zero, .zero)))
            }
        }

        // check: 270 ticks without an election; and the leader's silence does start one
        #expect(roles == [.follower])
        #expect(node.core.term == 1)
        #expect(node.core.leader == 1)
        let ticks = try Self.tickUntilRoleChanges(node)
        #expect((10..<20).contains(ticks))
        #expect(node.core.role == .candidate)
    }

    /// §5.2: a leader sends periodic heartbeats (empty AppendEntries; a dedicated message here)
    /// to all followers to maintain its authority, every `heartbeatTicks`.
    @Test("§5.2 a leader sends heartbeats every heartbeatTicks")
    func leaderHeartbeats() throws {
        // init
        let leader = try stableLeader { $0.heartbeatTicks = 3 }

        // act
        var beats: [Int: [Message]] = [:]
        for t in 1...12 {
            try leader.core.tick()
            let hb = try leader.drain().messages.filter { $0.heartbeat != nil }
            if !hb.isEmpty { beats[t] = hb }
        }

        // check
        #expect(beats.keys.sorted() == [3, 6, 9, 12])
        for (_, hb) in beats {
            #expect(hb.map(\.to).sorted() == [2, 3])
            #expect(hb.allSatisfy { $0.term == 1 && $0.heartbeat?.commit == 1 })
        }
        #expect(leader.core.role == .leader)
    }

    /// Thesis §9.6 (PreVote): a node that could not win an election does not disrupt the
    /// cluster: a partitioned follower keeps its term while its pre-votes go unanswered or are
    /// refused, so it does not force a healthy leader to step down when it rejoins.
    @Test("§9.6 PreVote: a refused pre-candidate does not increment its term")
    func preVoteRefusedKeepsTerm() throws {
        // init
        var cfg = RaftConfiguration(id: 1)
        cfg.randomSeed = 5
        let node = try TestNode(1, hardState: HardState(term: 4), config: cfg)

        // act: two timeouts without answer, then both peers refuse
        _ = try Self.tickUntilRoleChanges(node)
        for _ in 0..<40 { try node.core.tick() }
        let asked = try node.drain()
        try node.receive(Message(from: 2, to: 1, term: 4, kind: .preVoteResponse(RequestVoteResponse(granted: false))))
        try node.receive(Message(from: 3, to: 1, term: 4, kind: .preVoteResponse(RequestVoteResponse(granted: false))))

        // check
        #expect(node.core.term == 4)
        #expect(node.core.vote == .none)
        #expect(node.core.role == .follower)
        #expect(node.storage.currentHardState.term == 4)
        #expect(asked.messages.filter { $0.preVoteRequest != nil }.allSatisfy { $0.term == 5 })
        #expect(asked.messages.contains { $0.preVoteRequest != nil })
    }

    /// Thesis §6.2 (CheckQuorum): a leader that has not heard from a majority within an
    /// election timeout steps down, so that clients stop waiting on a leader that cannot commit.
    @Test("§6.2 CheckQuorum: a leader cut off from a majority steps down")
    func checkQuorumStepsDown() throws {
        // init: a leader with CheckQuorum on; both followers acknowledged it at tick 0
        let leader = try stableLeader { $0.checkQuorum = true }

        // act: three election timeouts (10 ticks each) pass; node 2 answers once, in the second
        var roles: [Int: RaftCore.Role] = [:]
        for t in 1...30 {
            try leader.core.tick()
            try leader.drain()
            if t == 13 {
                try leader.receive(Message(from: 2, to: 1, term: 1, kind: .heartbeatResponse(HeartbeatResponse())))
            }
            roles[t] = leader.core.role
        }

        // check: a majority (itself and node 2) was heard in each of the first two timeouts,
        // nobody but itself in the third
        #expect(roles[20] == .leader)
        #expect(roles[29] == .leader)
        #expect(roles[30] == .follower)
        #expect(leader.core.term == 1)
        #expect(leader.core.leader == .none)
    }

    /// Thesis §4.2.3 (with CheckQuorum): a follower that heard from its leader within the
    /// minimum election timeout ignores a RequestVote of a higher term: it neither updates its
    /// term nor grants the vote, so a removed or partitioned server cannot depose a live leader.
    @Test("§4.2.3 CheckQuorum: a follower with a live leader ignores disruptive vote requests")
    func leaderLeaseIgnoresVotes() throws {
        // init
        var cfg = RaftConfiguration(id: 2)
        cfg.preVote = false
        let node = try TestNode(2, hardState: HardState(term: 1), config: cfg)
        try node.receive(heartbeatMsg(from: 1, to: 2, term: 1))

        // act
        let out = try node.receive(voteRequest(from: 3, to: 2, term: 5, lastIndex: 9, lastTerm: 1))

        // check
        #expect(node.core.term == 1)
        #expect(node.core.vote == .none)
        #expect(node.core.leader == 1)
        #expect(!out.messages.contains { $0.voteGranted == true })
    }
}
