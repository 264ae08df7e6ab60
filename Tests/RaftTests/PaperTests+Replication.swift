import Testing

@testable import Raft

// MARK: - §5.3 Log replication

extension PaperTests {
    /// §5.3: the leader appends a client command to its log as a new entry of its term, then
    /// issues AppendEntries to each of the other servers to replicate it; the entry is not
    /// committed yet.
    @Test("§5.3 the leader appends a proposal to its log, then replicates it")
    func leaderAppendsThenReplicates() throws {
        // init: a leader of term 1 whose no-op (index 1) is committed
        let leader = try stableLeader()
        try #require(leader.core.commitIndex == 1)

        // act
        let receipt = try leader.core.propose([42])
        let out = try leader.drain()

        // check
        let entry = LogEntry(term: 1, index: 2, kind: .command, data: [42])
        #expect(receipt == ProposalReceipt(term: 1, firstIndex: 2, lastIndex: 2))
        #expect(out.persisted == [[entry]])
        #expect(leader.storage.lastIndex() == 2)
        for p: NodeID in [2, 3] {
            let appends = out.messages(to: p).compactMap(\.appendEntries)
            #expect(appends == [AppendEntries(prevLogIndex: 1, prevLogTerm: 1, entries: [entry], leaderCommit: 1)], "to \(p)")
        }
        #expect(leader.core.commitIndex == 1)
        #expect(out.applied.isEmpty)
    }

    /// §5.3: an entry is committed once the leader that created it has replicated it on a
    /// majority of the servers (the leader included); then the leader applies it.
    @Test("§5.3 the leader commits an entry once a majority stored it")
    func leaderCommitsOnMajority() throws {
        // init: a five-node cluster; the leader proposed index 2 and persisted it
        let leader = try stableLeader(voters: [1, 2, 3, 4, 5])
        try leader.core.propose([7])
        try leader.drain()

        // act 1: one follower stored it (two copies of five)
        let one = try leader.receive(appendAck(from: 2, to: 1, term: 1, index: 2))
        let commitAfterOne = leader.core.commitIndex
        // act 2: a second follower stored it (three copies of five)
        let two = try leader.receive(appendAck(from: 4, to: 1, term: 1, index: 2))

        // check
        #expect(commitAfterOne == 1)
        #expect(one.applied.isEmpty)
        #expect(leader.core.commitIndex == 2)
        #expect(two.applied.map(\.index) == [2])
        #expect(two.applied.map(\.data) == [[7]])
    }

    /// §5.3 with §10.2.1 of the thesis: the leader may send entries before writing them to its
    /// own disk, but it counts itself among the servers storing an entry only once it is
    /// durable. Here one follower storing the entry is not a majority until the leader's own
    /// write completes.
    @Test("§5.3 the leader counts its own copy only once persisted")
    func leaderCountsItselfWhenDurable() throws {
        // init
        let leader = try stableLeader()
        try leader.core.propose([9])
        let rd = try leader.core.ready()
        try #require(rd.entries.map(\.index) == [2])

        // act 1: follower 2 stores the entry before the leader's write completes
        try leader.core.step(appendAck(from: 2, to: 1, term: 1, index: 2))
        let commitBeforeWrite = leader.core.commitIndex
        // act 2: the write completes
        try leader.storage.append(rd.entries)
        try leader.core.advance(rd)

        // check
        #expect(commitBeforeWrite == 1)
        #expect(leader.core.commitIndex == 2)
    }

    /// §5.3: the leader keeps track of the highest index it knows to be committed and includes
    /// it in future AppendEntries (and heartbeats); once a follower learns that an entry is
    /// committed, it applies it. A follower never learns it before the leader commits.
    @Test("§5.3 followers learn the commit index from the leader's later messages")
    func followersLearnCommit() throws {
        // init: a three-node cluster with leader 1 and every node at commit 1
        let net = TestNet(try [1, 2, 3].map { try TestNode($0) })
        try net[1].core.campaign()
        try net.stabilize()
        try #require(net[1].core.role == .leader)
        try #require([1, 2, 3].allSatisfy { net[$0].core.commitIndex == 1 })

        // act 1: propose; the appends reach the followers
        try net[1].core.propose([5])
        let first = try net.deliverRound()
        // check 1: followers store index 2 but do not commit it; nobody has yet
        #expect(first.contains { $0.to == 2 && $0.appendEntries?.entries.map(\.index) == [2] })
        #expect(net[2].core.lastIndex == 2 && net[3].core.lastIndex == 2)
        #expect([1, 2, 3].allSatisfy { net[$0].core.commitIndex == 1 })

        // act 2: their acknowledgements reach the leader
        try net.deliverRound()
        // check 2: the leader committed and applied it; followers not yet
        #expect(net[1].core.commitIndex == 2)
        #expect(net[1].applied.last?.data == [5])
        #expect(net[2].core.commitIndex == 1 && net[3].core.commitIndex == 1)

        // act 3: the leader's next messages reach the followers
        let third = try net.deliverRound()
        // check 3
        #expect(third.filter { $0.from == 1 }.allSatisfy { $0.appendEntries?.leaderCommit == 2 })
        for f: NodeID in [2, 3] {
            #expect(net[f].core.commitIndex == 2)
            #expect(net[f].applied.map(\.index) == [1, 2])
            #expect(net[f].applied.last?.data == [5])
        }
    }

    /// §5.3 (follower side): a follower learns the commit index from the leader's
    /// AppendEntries and heartbeats and applies up to it, but never past the last entry the
    /// message covers (`min(leaderCommit, index of last new entry)`).
    @Test("§5.3 a follower learns the commit index from appends and heartbeats")
    func followerLearnsCommit() throws {
        // init: an empty follower of term 1
        let node = try TestNode(2, hardState: HardState(term: 1))

        // act: entries 1-2 without a commit index, a heartbeat with commit 1, then entry 3
        // with commit 5 (beyond what the message covers)
        var commits: [LogIndex] = []
        try node.receive(appendMsg(from: 1, to: 2, term: 1, prev: (.zero, .zero), entries: entries(terms(1, 1))))
        commits.append(node.core.commitIndex)
        try node.receive(heartbeatMsg(from: 1, to: 2, term: 1, commit: 1))
        commits.append(node.core.commitIndex)
        try node.receive(appendMsg(from: 1, to: 2, term: 1, prev: (2, 1), entries: entries(terms(1), from: 3), commit: 5))
        commits.append(node.core.commitIndex)

        // check
        #expect(commits == [0, 1, 3])
        #expect(node.applied.map(\.index) == [1, 2, 3])
    }

    /// §5.3: a follower commits only entries the leader's message proved to match the
    /// leader's log, `min(leaderCommit, index of last new entry)`: entries past it may be left
    /// over from a deposed leader and differ from the committed ones at those indexes.
    @Test("§5.3 a follower never commits entries not proven to match the leader's log")
    func followerCommitsOnlyMatchingEntries() throws {
        // init: a follower holding [1, 1, 2, 2] whose term-2 entries come from a deposed leader
        let node = try TestNode(3, log: entries(terms(1, 1, 2, 2)), hardState: HardState(term: 2))

        // act: the leader of term 3, whose log agrees up to index 2 and which committed 3,
        // sends a heartbeat (proving nothing about this log), then an empty append after index 2
        var commits: [LogIndex] = []
        try node.receive(heartbeatMsg(from: 1, to: 3, term: 3, commit: 3))
        commits.append(node.core.commitIndex)
        try node.receive(appendMsg(from: 1, to: 3, term: 3, prev: (2, 1), commit: 3))
        commits.append(node.core.commitIndex)

        // check
        #expect(commits == [0, 2])
        #expect(node.applied.map(\.term) == terms(1, 1))
        #expect(try node.logTerms == terms(1, 1, 2, 2))
    }

    /// A consistency-check case: the append's previous entry and whether it must be accepted.
    struct ConsistencyCase: Sendable, CustomTestStringConvertible {
        var prevIndex: LogIndex
        var prevTerm: Term
        var accepted: Bool
        var resultingLog: [Term]
        var testDescription: String { "prev (\(prevIndex), \(prevTerm)) \(accepted ? "accepted" : "rejected")" }
    }

    /// §5.3: when sending AppendEntries the leader includes the index and term of the entry
    /// that precedes the new ones; if the follower does not find an entry in its log with that
    /// index and term, it refuses the new entries (and says which index failed).
    @Test("§5.3 the consistency check refuses an append whose previous entry does not match", arguments: [
        ConsistencyCase(prevIndex: 0, prevTerm: 0, accepted: true, resultingLog: terms(3)),
        ConsistencyCase(prevIndex: 1, prevTerm: 1, accepted: true, resultingLog: terms(1, 3)),
        ConsistencyCase(prevIndex: 2, prevTerm: 2, accepted: true, resultingLog: terms(1, 2, 3)),
        ConsistencyCase(prevIndex: 1, prevTerm: 2, accepted: false, resultingLog: terms(1, 2)),
        ConsistencyCase(prevIndex: 2, prevTerm: 1, accepted: false, resultingLog: terms(1, 2)),
        ConsistencyCase(prevIndex: 2, prevTerm: 3, accepted: false, resultingLog: terms(1, 2)),
        ConsistencyCase(prevIndex: 3, prevTerm: 2, accepted: false, resultingLog: terms(1, 2)),
        ConsistencyCase(prevIndex: 3, prevTerm: 3, accepted: false, resultingLog: terms(1, 2)),
    ])
    func consistencyCheck(_ c: ConsistencyCase) throws {
        // init: a follower of term 3 holding [1, 2], nothing committed
        let node = try TestNode(2, log: entries(terms(1, 2)), hardState: HardState(term: 3))
        let newEntry = LogEntry(term: 3, index: c.prevIndex + 1, data: [0xEE])

        // act
        let out = try node.receive(appendMsg(from: 1, to: 2, term: 3, prev: (c.prevIndex, c.prevTerm), entries: [newEntry]))

        // check
        let answers = out.messages(to: 1).compactMap(\.appendResponse)
        try #require(answers.count == 1)
        #expect(answers[0].reject == !c.accepted)
        #expect(answers[0].index == (c.accepted ? c.prevIndex + 1 : c.prevIndex))
        #expect(try node.logTerms == c.resultingLog)
        #expect(node.storedTerms == c.resultingLog)
        // An answer to the leader of the term counts as hearing from it either way.
        #expect(node.core.leader == 1)
    }

    /// An append and what the follower's log must become.
    struct AppendCase: Sendable, CustomTestStringConvertible {
        var prevIndex: LogIndex
        var prevTerm: Term
        var sent: [Term]
        var resultingLog: [Term]
        /// Terms of the entries the follower had to write.
        var written: [Term]
        var testDescription: String { "prev (\(prevIndex), \(prevTerm)) + \(sent) -> \(resultingLog)" }
    }

    /// §5.3: if an existing entry conflicts with a new one (same index, different term), the
    /// follower deletes it and all that follow it, then appends the leader's entries not
    /// already in its log. Entries that agree are kept, and so is a suffix past the message's
    /// entries when nothing conflicts (the message may be stale).
    @Test("§5.3 a follower deletes a conflicting suffix and appends the leader's entries", arguments: [
        AppendCase(prevIndex: 2, prevTerm: 2, sent: terms(3), resultingLog: terms(1, 2, 3), written: terms(3)),
        AppendCase(prevIndex: 1, prevTerm: 1, sent: terms(3, 4), resultingLog: terms(1, 3, 4), written: terms(3, 4)),
        AppendCase(prevIndex: 0, prevTerm: 0, sent: terms(1), resultingLog: terms(1, 2), written: []),
        AppendCase(prevIndex: 0, prevTerm: 0, sent: terms(3), resultingLog: terms(3), written: terms(3)),
        AppendCase(prevIndex: 1, prevTerm: 1, sent: [], resultingLog: terms(1, 2), written: []),
        AppendCase(prevIndex: 0, prevTerm: 0, sent: terms(1, 2, 4), resultingLog: terms(1, 2, 4), written: terms(4)),
    ])
    func followerReplacesConflictingSuffix(_ c: AppendCase) throws {
        // init: a follower of term 2 holding [1, 2], nothing committed
        let node = try TestNode(2, log: entries(terms(1, 2)), hardState: HardState(term: 2))

        // act: the leader of term 4 sends entries
        let out = try node.receive(
            appendMsg(from: 1, to: 2, term: 4, prev: (c.prevIndex, c.prevTerm), entries: entries(c.sent, from: c.prevIndex + 1)))

        // check
        #expect(try node.logTerms == c.resultingLog)
        #expect(node.storedTerms == c.resultingLog)
        #expect(out.persisted.flatMap { $0 }.map(\.term) == c.written)
        #expect(out.messages(to: 1).compactMap(\.appendResponse) == [AppendEntriesResponse(index: c.prevIndex + UInt64(c.sent.count))])
    }

    /// A follower's log when a new leader takes over, and the `prevLogIndex` of each append
    /// carrying entries that the leader sends it until their logs match.
    struct BacktrackCase: Sendable, CustomTestStringConvertible {
        var name: String
        var leaderLog: [Term]
        var followerLog: [Term]
        var probes: [LogIndex]
        var testDescription: String { name }
    }

    /// Figure 7's leader (term 8), `[1,1,1,4,4,5,5,6,6,6]`.
    static let figure7Leader = terms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6)

    /// §5.3: after a rejection the leader decrements nextIndex and retries, until the logs
    /// match; then the follower's conflicting entries are removed and the leader's appended.
    /// With the optimisation the paper sketches (the follower reports the conflicting term),
    /// the leader skips a whole term of conflicting entries per round trip instead of one
    /// entry. Followers (a)–(f) of figure 7 each need at most one rejection (one entry at a
    /// time, (f) would need seven); the last case needs exactly two, one per term.
    @Test("§5.3 the leader backs up nextIndex a term at a time until the logs match", arguments: [
        BacktrackCase(name: "figure 7 (a): missing entries", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 4, 4, 5, 5, 6, 6), probes: [10, 9]),
        BacktrackCase(name: "figure 7 (b): missing many entries", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 4), probes: [10, 4]),
        BacktrackCase(name: "figure 7 (c): extra uncommitted entry", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6), probes: [10]),
        BacktrackCase(name: "figure 7 (d): extra entries of a later term", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7), probes: [10]),
        BacktrackCase(name: "figure 7 (e): conflicting term-4 entries", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 4, 4, 4, 4), probes: [10, 5]),
        BacktrackCase(name: "figure 7 (f): conflicting entries of terms 2 and 3", leaderLog: figure7Leader,
                      followerLog: terms(1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3), probes: [10, 3]),
        BacktrackCase(name: "two conflicting terms, one round trip each", leaderLog: terms(1, 2, 2, 2, 4, 4, 4),
                      followerLog: terms(1, 3, 3, 3, 3, 3, 3, 3, 3), probes: [7, 4, 1]),
    ])
    func leaderBacktracksByTerm(_ c: BacktrackCase) throws {
        // init: the leader is elected (by node 3, whose messages are then lost) in the term
        // after the last of either log
        let term = max(c.leaderLog.last!, c.followerLog.last!)
        let leader = try TestNode(1, log: entries(c.leaderLog), hardState: HardState(term: term))
        try leader.core.campaign()
        try leader.drain()
        let follower = try TestNode(2, log: entries(c.followerLog), hardState: HardState(term: term))
        let net = TestNet([leader, follower])
        try leader.core.step(voteResponse(from: 3, to: 1, term: term.next, granted: true))
        try #require(leader.core.role == .leader)

        // act
        try net.stabilize()

        // check
        let probes = net.delivered.filter { $0.to == 2 }.compactMap(\.appendEntries).filter { !$0.entries.isEmpty }
        #expect(probes.map(\.prevLogIndex) == c.probes)
        let rejections = net.delivered.filter { $0.to == 1 }.compactMap(\.appendResponse).filter(\.reject)
        #expect(rejections.count == c.probes.count - 1)
        let expectedLog = c.leaderLog + [term.next]
        #expect(try leader.logTerms == expectedLog)
        #expect(try follower.logTerms == expectedLog)
        #expect(follower.storedTerms == expectedLog)
        #expect(follower.logEntries == leader.logEntries)
    }

    /// §5.3: if followers crash or run slowly, or if messages are lost, the leader retries
    /// AppendEntries indefinitely (even after it committed the entries) until every follower
    /// stores all entries.
    @Test("§5.3 the leader keeps retrying until a lagging follower stores every entry")
    func leaderRetriesUntilFollowerCatchesUp() throws {
        // init: leader 1 of three nodes; node 2 is cut off while three commands commit
        let net = TestNet(try [1, 2, 3].map { try TestNode($0) })
        try net[1].core.campaign()
        try net.stabilize()
        try #require(net[1].core.role == .leader)
        net.drop = { $0.to == 2 || $0.from == 2 }
        for c: UInt8 in 1...3 { try net[1].core.propose([c]) }
        try net.stabilize()
        try #require(net[1].core.commitIndex == 4)
        try #require(net[2].core.lastIndex == 1)

        // act: node 2 is reachable again; the leader's next heartbeat finds it behind
        net.drop = { _ in false }
        try net[1].core.tick()
        try net.stabilize()

        // check: the heartbeat told node 2 to commit no more than the leader knew it held
        let beats = net.delivered.filter { $0.to == 2 }.compactMap(\.heartbeat)
        #expect(beats.map(\.commit) == [1])
        #expect(net[2].core.lastIndex == 4)
        #expect(net[2].logEntries == net[1].logEntries)
        #expect(net[2].core.commitIndex == 4)
        #expect(net[2].applied.map(\.data) == [[], [1], [2], [3]])
    }

    /// §5.3 (Leader Append-Only, figure 3): a leader never overwrites or deletes entries in its
    /// own log, committed or not; it only appends. Messages that would make a follower rewrite
    /// its log (an append of the leader's own term carrying conflicting entries, a stale append,
    /// a rejection) leave it as it is.
    @Test("§5.3 a leader never overwrites or deletes its own entries")
    func leaderAppendOnly() throws {
        // init: leader 1 of term 2 holding [1, 2 (no-op), 2, 2, 2], nothing committed yet
        let leader = try TestNode(1, log: entries(terms(1)), hardState: HardState(term: 1))
        try elect(leader)
        for c: UInt8 in 1...3 { try leader.core.propose([c]) }
        try leader.drain()
        let before = leader.logEntries
        try #require(before.map(\.term) == terms(1, 2, 2, 2, 2))
        try #require(leader.core.commitIndex == 0)

        // act
        var written: [[LogEntry]] = []
        let attempts = [
            appendMsg(from: 2, to: 1, term: 2, prev: (1, 1), entries: entries(terms(1, 1), from: 2), commit: 3),
            appendMsg(from: 3, to: 1, term: 2, prev: (.zero, .zero), entries: entries(terms(1))),
            appendMsg(from: 3, to: 1, term: 1, prev: (1, 1), entries: entries(terms(1), from: 2)),
            Message(from: 2, to: 1, term: 2, kind: .appendEntriesResponse(
                AppendEntriesResponse(index: 1, reject: true, rejectHint: 0, rejectHintTerm: 0))),
            heartbeatMsg(from: 3, to: 1, term: 2, commit: 0),
        ]
        for m in attempts { written += try leader.receive(m).persisted }
        try leader.core.propose([4])
        written += try leader.drain().persisted

        // check
        #expect(leader.core.role == .leader)
        #expect(Array(leader.logEntries.prefix(5)) == before)
        #expect(leader.core.lastIndex == 6)
        #expect(leader.logEntries.last?.data == [4])
        #expect(written.allSatisfy { $0.first.map { $0.index > 5 } ?? true })
        #expect(leader.storedTerms == terms(1, 2, 2, 2, 2, 2))
        #expect(leader.core.commitIndex == 0)
    }

    /// §5.3: once an entry is committed, each server applies it, and all entries before it,
    /// to its state machine in log order; with a per-batch limit the entries come in several
    /// batches, still in order and without gaps.
    @Test("§5.3 committed entries are applied in log order", arguments: [0, 1, 40])
    func committedEntriesAppliedInOrder(maxCommittedBytes: Int) throws {
        // init: a leader of term 1 with its no-op applied; three commands proposed one by one
        let leader = try stableLeader { $0.maxCommittedBytesPerReady = maxCommittedBytes }
        for c: UInt8 in [10, 20, 30] {
            try leader.core.propose([c])
            try leader.drain()
        }
        let follower = try TestNode(2, hardState: HardState(term: 1), config: paperConfig(2) { $0.maxCommittedBytesPerReady = maxCommittedBytes })

        // act: node 3 acknowledges all at once; the follower gets all with the commit index
        let out = try leader.receive(appendAck(from: 3, to: 1, term: 1, index: 4))
        let fout = try follower.receive(appendMsg(from: 1, to: 2, term: 1, prev: (.zero, .zero), entries: leader.logEntries, commit: 4))

        // check
        for (node, batches) in [(leader, out.committed), (follower, fout.committed)] {
            #expect(node.applied.map(\.index) == [1, 2, 3, 4])
            #expect(node.applied.map(\.data) == [[], [10], [20], [30]])
            #expect(node.core.appliedIndex == 4)
            if maxCommittedBytes == 1 { #expect(batches.allSatisfy { $0.count == 1 }) }
        }
    }
}
