import RaftTestKit
import Testing

@testable import Raft

// MARK: - §5.4 Safety

extension PaperTests {
    /// A vote request: the candidate's last log entry and whether it is at least as up to date.
    struct UpToDateCase: Sendable, CustomTestStringConvertible {
        var lastIndex: LogIndex
        var lastTerm: Term
        var granted: Bool
        var why: String
        var testDescription: String { "candidate ends at (\(lastIndex), \(lastTerm)): \(why)" }
    }

    /// §5.4.1 (election restriction): a voter denies its vote if its own log is more up to date
    /// than the candidate's. The log with the later last term is more up to date; with equal
    /// last terms, the longer log is. The voter here holds `[1, 1, 2]`.
    @Test("§5.4.1 a voter denies its vote to a candidate whose log is less up to date", arguments: [
        UpToDateCase(lastIndex: 2, lastTerm: 2, granted: false, why: "same last term, shorter"),
        UpToDateCase(lastIndex: 3, lastTerm: 1, granted: false, why: "lower last term, same length"),
        UpToDateCase(lastIndex: 6, lastTerm: 1, granted: false, why: "lower last term, longer"),
        UpToDateCase(lastIndex: 0, lastTerm: 0, granted: false, why: "empty log"),
        UpToDateCase(lastIndex: 3, lastTerm: 2, granted: true, why: "same last term, same length"),
        UpToDateCase(lastIndex: 4, lastTerm: 2, granted: true, why: "same last term, longer"),
        UpToDateCase(lastIndex: 1, lastTerm: 3, granted: true, why: "higher last term, shorter"),
    ])
    func electionRestriction(_ c: UpToDateCase) throws {
        // init: voter 2 of term 2 holding [1, 1, 2]
        let node = try TestNode(2, log: entries(terms(1, 1, 2)), hardState: HardState(term: 2))

        // act: candidate 3 of term 3 asks
        let out = try node.receive(voteRequest(from: 3, to: 2, term: 3, lastIndex: c.lastIndex, lastTerm: c.lastTerm))

        // check
        #expect(out.messages(to: 3).compactMap(\.voteGranted) == [c.granted])
        #expect(node.core.vote == (c.granted ? 3 : .none))
        #expect(node.core.term == 3)
        #expect(node.storage.currentHardState.vote == node.core.vote)
    }

    /// §5.4.1: because a candidate needs votes from a majority and each voter refuses a less
    /// up-to-date log, a candidate missing entries that a majority holds cannot win; one
    /// holding them can, and brings the other up to date.
    @Test("§5.4.1 a candidate missing entries a majority holds cannot become leader")
    func staleCandidateCannotWin() throws {
        // init: nodes 1 and 2 hold [1, 1]; node 3 holds only [1]
        let net = TestNet([
            try TestNode(1, log: entries(terms(1, 1)), hardState: HardState(term: 1, commit: 2)),
            try TestNode(2, log: entries(terms(1, 1)), hardState: HardState(term: 1, commit: 2)),
            try TestNode(3, log: entries(terms(1)), hardState: HardState(term: 1, commit: 1)),
        ])

        // act 1: node 3 campaigns
        try net[3].core.campaign()
        try net.stabilize()
        // check 1
        #expect(net[3].core.role != .leader)
        #expect([1, 2, 3].allSatisfy { net[$0].core.term == 2 && net[$0].core.role == .follower })
        #expect([1, 2].allSatisfy { net[$0].core.vote == .none })

        // act 2: node 1 campaigns
        try net[1].core.campaign()
        try net.stabilize()
        // check 2
        #expect(net[1].core.role == .leader)
        #expect(net[1].core.term == 3)
        #expect(try [1, 2, 3].allSatisfy { try net[$0].logTerms == terms(1, 1, 3) })
    }

    /// §5.4.2 (figure 8): a leader never commits an entry from a previous term by counting
    /// replicas; only entries of its own term are committed that way, and committing one
    /// commits every entry before it. Here the leader of term 4 copies its term-2 entry to a
    /// majority of a five-node cluster (itself, S2, S3) before anything of term 4: the entry
    /// stays uncommitted, because a server with a term-3 entry at that index (S5 in figure 8)
    /// could still be elected and overwrite it. Once its no-op of term 4 reaches a majority,
    /// both commit.
    @Test("§5.4.2 a leader does not commit a previous-term entry by counting replicas")
    func noCommitOfPreviousTermByCounting() throws {
        // init: S1 holds [1, 2] (index 1 committed); S2 and S3 hold only [1]; S4 and S5 are
        // down. S1 sends one entry per append, so its term-2 entry travels alone.
        let s1 = try TestNode(
            1, voters: [1, 2, 3, 4, 5], log: entries(terms(1, 2)), hardState: HardState(term: 3, commit: 1),
            config: paperConfig(1) { $0.maxMessageBytes = 1 })
        let followers = try [2, 3].map { id in
            try TestNode(id, voters: [1, 2, 3, 4, 5], log: entries(terms(1)), hardState: HardState(term: 3, commit: 1))
        }
        let net = TestNet([s1] + followers)
        try s1.core.campaign()

        // act 1: run until S2 and S3 both acknowledged index 2
        func matches() -> [LogIndex] { s1.core.status().members.filter { $0.id == 2 || $0.id == 3 }.map(\.match) }
        var rounds = 0
        while !(s1.core.role == .leader && matches().count == 2 && matches().allSatisfy { $0 >= 2 }) && rounds < 20 {
            try net.deliverRound()
            rounds += 1
        }

        // check 1: entry 2 (term 2) is stored on S1, S2 and S3, a majority, yet not committed
        try #require(s1.core.role == .leader && s1.core.term == 4)
        try #require(matches() == [2, 2], "the figure-8 situation was not reproduced")
        #expect(try s1.core.term(at: 2) == 2)
        #expect(try followers.allSatisfy { try $0.core.term(at: 2) == 2 })
        #expect(s1.core.commitIndex == 1)
        #expect(followers.allSatisfy { $0.core.commitIndex == 1 })
        #expect(s1.applied.map(\.index) == [1])

        // act 2: the leader's no-op of term 4 reaches them
        try net.stabilize()

        // check 2
        #expect(s1.core.commitIndex == 3)
        #expect(s1.applied.map(\.index) == [1, 2, 3])
        for f in followers {
            #expect(f.core.commitIndex == 3)
            #expect(f.logEntries == s1.logEntries)
        }
    }

    /// §5.4.2 / §8: a new leader commits entries of earlier terms indirectly: it appends a
    /// no-op of its own term at the start of its term, and once that entry is on a majority
    /// it and every entry before it are committed (and applied in order) at once.
    @Test("§5.4.2 a new leader's no-op commits the entries of earlier terms")
    func noopCommitsEarlierEntries() throws {
        // init: node 1 holds [1, 1, 2], nothing committed, and becomes leader of term 3
        let leader = try TestNode(1, log: entries(terms(1, 1, 2)), hardState: HardState(term: 2))
        let won = try elect(leader)
        try #require(leader.core.role == .leader)
        #expect(won.persisted.flatMap { $0 } == [LogEntry(term: 3, index: 4, kind: .noop)])

        // act 1: node 2 reports it holds [1, 1, 2], the old entries, only
        try leader.receive(appendAck(from: 2, to: 1, term: 3, index: 3))
        let commitAfterOld = leader.core.commitIndex
        // act 2: node 2 stores the no-op
        let out = try leader.receive(appendAck(from: 2, to: 1, term: 3, index: 4))

        // check
        #expect(commitAfterOld == 0)
        #expect(leader.core.commitIndex == 4)
        #expect(out.committed.count == 1)
        #expect(out.applied.map(\.index) == [1, 2, 3, 4])
        #expect(out.applied.map(\.term) == terms(1, 1, 2, 3))
        #expect(out.applied.last?.kind == .noop)
    }

    /// §5.4.3 (State Machine Safety): if a server has applied a log entry at a given index, no
    /// other server ever applies a different entry for that index. Checked on seeded runs of
    /// simulated clusters with message loss, duplication and reordering, partitions and crashes:
    /// the safety checker sees no violation, the cluster commits, every pair of nodes agrees on
    /// their common committed prefix, and after healing every node applies the same entries.
    /// (The paper's algorithm alone, and with PreVote and CheckQuorum on.)
    @Test("§5.4.3 committed entries are the same on every node", arguments: [
        (3, 1, true), (3, 2, true), (5, 3, true), (5, 4, true), (3, 5, false), (5, 6, false),
    ] as [(Int, UInt64, Bool)])
    func stateMachineSafety(nodes: Int, seed: UInt64, paperOnly: Bool) throws {
        // init
        let faults = SimFaults(
            dropRate: 0.05, duplicateRate: 0.03, maxDelay: 3, partitionRate: 0.03, crashRate: 0.02,
            restartRate: 0.2, compactRate: 0, proposeRate: 0.5)
        let cluster = try SimCluster(nodes: nodes, seed: seed, faults: faults) { c in
            if paperOnly {
                c.preVote = false
                c.checkQuorum = false
            }
        }

        // act
        for _ in 0..<400 { cluster.runRound() }
        let settled = cluster.settle(maxRounds: 500)

        // check
        #expect(cluster.checker.violations.isEmpty, "\(cluster.checker.violations)")
        #expect(settled != nil)
        let commits = cluster.ids.map { cluster.core($0)?.commitIndex ?? .zero }
        #expect(commits.min()! >= 20, "commit indexes \(commits)")
        var logs: [[LogEntry]] = []
        for (id, commit) in zip(cluster.ids, commits) {
            let s = cluster.storage(id)
            logs.append(try s.entries(in: s.firstIndex()..<commit + 1, maxBytes: .max))
        }
        for a in logs.indices {
            for b in logs.indices where a < b {
                let n = min(logs[a].count, logs[b].count)
                #expect(logs[a].prefix(n) == logs[b].prefix(n), "nodes \(a + 1) and \(b + 1) disagree")
            }
        }
        let machines = cluster.ids.map { cluster.machine($0) }
        #expect(machines.allSatisfy { $0 == machines[0] })
    }
}
