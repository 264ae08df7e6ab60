import Testing

@testable import Raft

/// One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
/// Consensus Algorithm", extended version), sections §5.1–§5.4.
///
/// §5.1 is in this file; §5.2 in `PaperTests+Election.swift`, §5.3 in
/// `PaperTests+Replication.swift`, §5.4 in `PaperTests+Safety.swift`. Unless a test says
/// otherwise the cores run the paper's algorithm: no PreVote, no CheckQuorum (``paperConfig``).
@Suite("Raft paper §5")
struct PaperTests {}

// MARK: - §5.1 Raft basics

extension PaperTests {
    /// §5.1: when servers start up they begin as followers, whatever term and vote they
    /// persisted before; no leader is known yet.
    @Test("§5.1 a server starts as a follower")
    func serverStartsAsFollower() throws {
        // init
        let fresh = try TestNode(1)
        let restarted = try TestNode(
            2, log: entries(terms(1, 2, 3)), hardState: HardState(term: 3, vote: 2, commit: 2))

        // act: nothing; starting up is the act

        // check
        #expect(fresh.core.role == .follower)
        #expect(fresh.core.term == .zero)
        #expect(fresh.core.vote == .none)
        #expect(fresh.core.leader == .none)
        #expect(restarted.core.role == .follower)
        #expect(restarted.core.term == 3)
        #expect(restarted.core.vote == 2)
        #expect(restarted.core.leader == .none)
        #expect(restarted.core.commitIndex == 2)
    }

    /// The message kinds a node may receive with a term higher than its own.
    enum HigherTermKind: String, CaseIterable, Sendable {
        case appendEntries, heartbeat, requestVote, requestVoteResponse, appendEntriesResponse, heartbeatResponse

        func message(from: NodeID, to: NodeID, term: Term) -> Message {
            switch self {
            case .appendEntries: appendMsg(from: from, to: to, term: term, prev: (.zero, .zero))
            case .heartbeat: heartbeatMsg(from: from, to: to, term: term)
            case .requestVote: voteRequest(from: from, to: to, term: term, lastIndex: 10, lastTerm: 4)
            case .requestVoteResponse: voteResponse(from: from, to: to, term: term, granted: false)
            case .appendEntriesResponse: appendAck(from: from, to: to, term: term, index: .zero)
            case .heartbeatResponse: Message(from: from, to: to, term: term, kind: .heartbeatResponse(HeartbeatResponse()))
            }
        }
    }

    /// §5.1: if a server's current term is smaller than the term of any message it receives, it
    /// updates its current term to the larger value (and persists it); a candidate or leader
    /// that learns of a newer term immediately reverts to follower.
    @Test("§5.1 a higher term in any message makes the node a follower of that term",
          arguments: [RaftCore.Role.follower, .candidate, .leader], HigherTermKind.allCases)
    func higherTermMakesFollower(startingAs role: RaftCore.Role, kind: HigherTermKind) throws {
        // init
        let node = try TestNode(1, hardState: HardState(term: 1))
        switch role {
        case .candidate: try node.core.campaign()
        case .leader: try elect(node)
        default: break
        }
        try node.drain()
        try #require(node.core.role == role)
        try #require(node.core.term < 5)

        // act
        let out = try node.receive(kind.message(from: 2, to: 1, term: 5))

        // check
        #expect(node.core.term == 5)
        #expect(node.core.role == .follower)
        #expect(out.hardStates.last?.term == 5)
        #expect(node.storage.currentHardState.term == 5)
        switch kind {
        case .appendEntries, .heartbeat:
            // The sender is the leader of the new term.
            #expect(node.core.leader == 2)
            #expect(node.core.vote == .none)
        case .requestVote:
            // A new term, so a fresh vote: granted to the (more up-to-date) candidate.
            #expect(node.core.leader == .none)
            #expect(node.core.vote == 2)
        default:
            #expect(node.core.leader == .none)
            #expect(node.core.vote == .none)
        }
    }

    /// §5.1: a server rejects a request with a stale term. An AppendEntries (or heartbeat) from
    /// a deposed leader neither changes the log, the commit index nor the term, nor counts as
    /// hearing from a leader (the election timer keeps running).
    @Test("§5.1 an append with a stale term is rejected", arguments: ["append", "heartbeat"])
    func staleAppendRejected(kind: String) throws {
        // init: a follower of term 3 holding [1, 2] with index 1 committed, five ticks into its timeout
        let node = try TestNode(2, log: entries(terms(1, 2)), hardState: HardState(term: 3, commit: 1))
        for _ in 0..<5 { try node.core.tick() }
        try node.drain()
        let m =
            kind == "append"
            ? appendMsg(from: 1, to: 2, term: 2, prev: (1, 1), entries: entries(terms(2, 2), from: 2), commit: 3)
            : heartbeatMsg(from: 1, to: 2, term: 2, commit: 2)

        // act
        let out = try node.receive(m)

        // check
        #expect(try node.logTerms == terms(1, 2))
        #expect(node.core.commitIndex == 1)
        #expect(node.core.term == 3)
        #expect(node.core.leader == .none)
        #expect(node.core.electionElapsed == 5)
        #expect(out.persisted.isEmpty)
        #expect(!out.messages.contains { $0.appendResponse.map { !$0.reject && $0.index > .zero } ?? false })
    }

    /// §5.1: a server rejects a vote request with a stale term: it grants nothing and its
    /// vote and term stay as they were.
    @Test("§5.1 a vote request with a stale term is rejected")
    func staleVoteRequestRejected() throws {
        // init: a follower of term 3 that has not voted
        let node = try TestNode(2, hardState: HardState(term: 3))

        // act: a candidate of term 2 with a long log asks for a vote
        let out = try node.receive(voteRequest(from: 1, to: 2, term: 2, lastIndex: 9, lastTerm: 2))

        // check
        #expect(!out.messages.contains { $0.voteGranted == true })
        #expect(node.core.vote == .none)
        #expect(node.core.term == 3)
        #expect(out.hardStates.isEmpty)
    }

    /// §5.1: a response carrying a stale term is ignored too: a vote granted in an earlier term
    /// does not count towards the candidate's current election.
    @Test("§5.1 a vote granted in an earlier term is not counted")
    func staleVoteGrantIgnored() throws {
        // init: node 1 campaigned in term 2 without an answer, then again in term 3
        let node = try TestNode(1, hardState: HardState(term: 1))
        try node.core.campaign()
        try node.drain()
        try node.core.campaign()
        try node.drain()
        try #require(node.core.term == 3)

        // act 1: the term-2 grant arrives late
        try node.receive(voteResponse(from: 2, to: 1, term: 2, granted: true))
        let roleAfterStaleGrant = node.core.role
        // act 2: the same node's grant for term 3 arrives
        try node.receive(voteResponse(from: 2, to: 1, term: 3, granted: true))

        // check: the stale grant was not counted, the current one was (and made it leader)
        #expect(roleAfterStaleGrant == .candidate)
        #expect(node.core.role == .leader)
    }

    /// §5.1: the current term is exchanged in every message; a stale leader that receives the
    /// answer of a server with a newer term reverts to follower. (With PreVote or CheckQuorum on,
    /// the implementation answers a stale append precisely so that the stale leader learns the
    /// term: its own term did not reach that leader through an election.)
    @Test("§5.1 a stale leader learns the newer term from the answer and steps down")
    func staleLeaderStepsDownOnAnswer() throws {
        // init: node 1 leads term 2; node 2 (default configuration) has moved on to term 3
        let leader = try TestNode(1, hardState: HardState(term: 1))
        try elect(leader)
        try #require(leader.core.role == .leader && leader.core.term == 2)
        var cfg = RaftConfiguration(id: 2)
        cfg.randomSeed = 7
        let follower = try TestNode(2, hardState: HardState(term: 3), config: cfg)

        // act: the leader's heartbeat reaches node 2, node 2's answer reaches the leader
        try leader.core.tick()
        let beats = try leader.drain().messages(to: 2).filter { $0.heartbeat != nil }
        try #require(!beats.isEmpty)
        let answers = try follower.receive(beats[0]).messages(to: 1)
        for a in answers { try leader.receive(a) }

        // check
        #expect(!answers.isEmpty)
        #expect(answers.allSatisfy { $0.term == 3 })
        #expect(follower.core.term == 3)
        #expect(leader.core.role == .follower)
        #expect(leader.core.term == 3)
    }
}
