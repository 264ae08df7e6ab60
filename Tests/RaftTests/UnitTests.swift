@testable import Raft
import RaftTestKit
import Testing

@Suite("Configuration validation")
struct ConfigurationTests {
    static func config(_ change: (inout RaftConfiguration) -> Void) -> RaftConfiguration {
        var c = RaftConfiguration(id: 1)
        change(&c)
        return c
    }

    @Test(arguments: [
        (config { $0.id = .none }, "id must not be zero"),
        (config { $0.heartbeatTicks = 0 }, "heartbeatTicks must be at least 1"),
        (config { $0.electionTicks = 1 }, "must be larger than heartbeatTicks"),
        (config { $0.electionTicks = 5; $0.heartbeatTicks = 5 }, "must be larger than heartbeatTicks"),
        (config { $0.maxInflightMessages = 0 }, "maxInflightMessages must be at least 1"),
        (config { $0.maxMessageBytes = 0 }, "maxMessageBytes must be at least 1"),
        (config { $0.maxInflightBytes = -1 }, "maxInflightBytes must not be negative"),
        (config { $0.maxInflightBytes = 10 }, "at least maxMessageBytes"),
        (config { $0.catchUpMaxInflightBytes = -1 }, "catchUpMaxInflightBytes must be 0"),
        (config { $0.catchUpMaxInflightBytes = 100 }, "or at least 4096"),
        (config { $0.maxUncommittedBytes = -5 }, "maxUncommittedBytes must not be negative"),
        (config { $0.maxCommittedBytesPerReady = -5 }, "maxCommittedBytesPerReady must not be negative"),
    ])
    func refusesBadConfiguration(_ c: RaftConfiguration, _ why: String) {
        do {
            _ = try RaftCore(configuration: c, storage: MemoryLogStorage(voters: [1, 2, 3]))
            Issue.record("configuration accepted; expected refusal: \(why)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(why), "message was: \(error.message)")
        }
    }

    @Test(arguments: [
        ([1, 0, 2], "reserved"),
        ([1, 2, 2], "listed more than once"),
    ])
    func refusesBadMembership(_ voters: [NodeID], _ why: String) {
        do {
            _ = try RaftCore(configuration: RaftConfiguration(id: 1), storage: MemoryLogStorage(voters: voters))
            Issue.record("membership accepted; expected refusal: \(why)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(why), "message was: \(error.message)")
        }
    }

    /// An empty membership is a node waiting to be added (issue 8): it starts, but never
    /// campaigns, however long it waits.
    @Test func emptyMembershipWaitsToBeAdded() throws {
        var core = try RaftCore(configuration: RaftConfiguration(id: 4), storage: MemoryLogStorage(voters: []))
        #expect(core.membership.isEmpty)
        #expect(try !core.campaign())
        for _ in 0..<100 { try core.tick() }
        #expect(core.role == .follower)
        #expect(try core.ready().messages.isEmpty)
    }

    @Test func defaultsAreValid() throws {
        try RaftConfiguration(id: 7).validate()
    }

    @Test func misaddressedMessageIsATypedError() throws {
        var core = try RaftCore(configuration: RaftConfiguration(id: 1), storage: MemoryLogStorage(voters: [1, 2, 3]))
        let m = Message(from: 2, to: 3, term: 1, kind: .heartbeat(Heartbeat(commit: .zero)))
        do {
            try core.step(m)
            Issue.record("a message for node 3 was accepted by node 1")
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }
}

@Suite("Memory log storage")
struct MemoryLogStorageTests {
    func entries(_ range: ClosedRange<UInt64>, term: Term) -> [LogEntry] {
        range.map { LogEntry(term: term, index: LogIndex(rawValue: $0), data: [UInt8($0)]) }
    }

    @Test func appendTruncatesConflictingSuffix() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append(entries(1...5, term: 1))
        try s.append(entries(3...4, term: 2))
        #expect(s.lastIndex() == 4)
        #expect(try s.term(at: 2) == 1)
        #expect(try s.term(at: 3) == 2)
    }

    @Test func appendAfterAGapIsRefused() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append(entries(1...2, term: 1))
        #expect(throws: RaftError.self) { try s.append(entries(4...5, term: 1)) }
        #expect(s.lastIndex() == 2)
    }

    @Test func compactionKeepsTermOfCompactedIndexAndRefusesReads() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append(entries(1...10, term: 3))
        try s.createSnapshot(at: 6, data: [1])
        try s.compact(upTo: 4)
        #expect(s.firstIndex() == 5)
        #expect(try s.term(at: 4) == 3)
        do {
            _ = try s.term(at: 3)
            Issue.record("read below the compacted index succeeded")
        } catch { #expect(error.code == .compacted) }
        do {
            _ = try s.entries(in: 11..<12, maxBytes: .max)
            Issue.record("read past the last index succeeded")
        } catch { #expect(error.code == .unavailable) }
        // Compaction past the snapshot would drop entries no snapshot covers.
        #expect(throws: RaftError.self) { try s.compact(upTo: 8) }
    }

    @Test func entriesRespectByteLimitButReturnAtLeastOne() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append(entries(1...5, term: 1))
        let one = LogEntry(term: 1, index: 1, data: [1]).byteSize
        #expect(try s.entries(in: 1..<6, maxBytes: 1).count == 1)
        #expect(try s.entries(in: 1..<6, maxBytes: 2 * one).count == 2)
        #expect(try s.entries(in: 1..<6, maxBytes: .max).count == 5)
    }

    @Test func olderSnapshotIsRefused() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append(entries(1...5, term: 1))
        try s.createSnapshot(at: 4, data: [])
        let old = Snapshot(metadata: SnapshotMetadata(index: 2, term: 1, confState: ConfState(voters: [1])))
        do {
            try s.applySnapshot(old)
            Issue.record("older snapshot accepted")
        } catch { #expect(error.code == .snapshotOutOfDate) }
    }
}

@Suite("Progress and in-flight window")
struct ProgressTests {
    @Test func inflightsFillAndFree() {
        var f = Inflights(capacity: 3, maxBytes: 0)
        f.add(5, bytes: 10)
        f.add(7, bytes: 10)
        #expect(!f.isFull)
        f.add(9, bytes: 10)
        #expect(f.isFull)
        f.freeLE(7)
        #expect(f.count == 1 && !f.isFull)
        f.add(11, bytes: 1)
        f.add(12, bytes: 1)
        #expect(f.isFull)
        f.freeFirstOne()
        #expect(f.count == 2)
        f.freeLE(100)
        #expect(f.count == 0 && f.bytes == 0)
    }

    @Test func inflightsByteLimit() {
        var f = Inflights(capacity: 100, maxBytes: 50)
        f.add(1, bytes: 30)
        #expect(!f.isFull)
        f.add(2, bytes: 30)
        #expect(f.isFull)
        f.freeLE(1)
        #expect(!f.isFull)
    }

    @Test func staleRejectionIsIgnoredInReplicate() {
        var p = Progress(next: 1, maxInflight: 10, maxInflightBytes: 0)
        _ = p.maybeUpdate(5)
        p.becomeReplicate()
        p.sentEntries(last: 9, count: 4, bytes: 40)
        let stale = p.maybeDecrTo(rejected: 4, hint: 2, probe: 0)
        #expect(!stale)
        #expect(p.next == 10)
        let fresh = p.maybeDecrTo(rejected: 8, hint: 6, probe: 0)
        #expect(fresh)
        #expect(p.next == 6)
    }

    @Test func probeBacksOffToHint() {
        var p = Progress(next: 11, maxInflight: 10, maxInflightBytes: 0)
        let first = p.maybeDecrTo(rejected: 10, hint: 3, probe: p.nextProbe())
        #expect(first)
        #expect(p.next == 4)
        // A duplicate of the same rejection is stale now.
        let duplicate = p.maybeDecrTo(rejected: 10, hint: 3, probe: 1)
        #expect(!duplicate)
    }

    @Test func rejectionAtMatchMeansTheFollowerLostData() {
        var p = Progress(next: 1, maxInflight: 10, maxInflightBytes: 0)
        _ = p.maybeUpdate(8)
        p.becomeReplicate()
        // While replicating, a rejection at `match` may be a reordered answer: stale.
        let reordered = p.maybeDecrTo(rejected: 8, hint: 0, probe: 0)
        #expect(!reordered)
        #expect(p.match == 8)
        // In probe state, the same rejection answering a probe sent before the follower
        // acknowledged `match` is a stale duplicate.
        p.becomeProbe()
        let stale = p.maybeDecrTo(rejected: 8, hint: 0, probe: 0)
        #expect(!stale)
        #expect(p.match == 8)
        // As the answer to a probe at `match` sent after that, it means the follower lost what
        // it acknowledged.
        let lost = p.maybeDecrTo(rejected: 8, hint: 0, probe: p.nextProbe())
        #expect(lost)
        #expect(p.match == .zero)
        #expect(p.next == 1)
        #expect(p.state == .probe)
    }

    static let quorumCases: [([UInt64], UInt64)] = [
        ([5, 5, 5], 5), ([9, 5, 1], 5), ([9, 8, 1, 1, 1], 1), ([9, 8, 7, 1, 1], 7), ([3], 3), ([4, 2], 2),
    ]

    @Test(arguments: quorumCases)
    func quorumCommitIndex(_ matches: [UInt64], _ expected: UInt64) {
        var t = ProgressTracker(
            conf: ConfState(voters: (1...UInt64(matches.count)).map { NodeID(rawValue: $0) }), next: 1, maxInflight: 1,
            maxInflightBytes: 0)
        for (i, m) in matches.enumerated() { t.progress[i].match = LogIndex(rawValue: m) }
        #expect(t.committedIndex() == LogIndex(rawValue: expected))
    }

    @Test func voteTally() {
        var t = ProgressTracker(conf: ConfState(voters: [1, 2, 3, 4, 5]), next: 1, maxInflight: 1, maxInflightBytes: 0)
        t.recordVote(from: 1, granted: true)
        t.recordVote(from: 2, granted: false)
        #expect(t.tally() == .pending)
        t.recordVote(from: 3, granted: true)
        t.recordVote(from: 3, granted: false)  // a second answer from the same voter is ignored
        #expect(t.tally() == .pending)
        t.recordVote(from: 4, granted: false)
        t.recordVote(from: 5, granted: false)
        #expect(t.tally() == .lost)
        t.resetVotes()
        for id: NodeID in [1, 2, 3] { t.recordVote(from: id, granted: true) }
        #expect(t.tally() == .won)
    }
}

@Suite("Determinism and restart")
struct DeterminismTests {
    /// The same seed replays exactly: same leader history, same commit, same trace.
    @Test func sameSeedSameRun() throws {
        func run() throws -> (String, [String]) {
            let c = try SimCluster(nodes: 5, seed: 42, faults: .all)
            for _ in 0..<300 { c.runRound() }
            return (c.ids.map { c.describeNode($0) }.joined(separator: "\n"), c.trace)
        }
        let a = try run()
        let b = try run()
        #expect(a.0 == b.0)
        #expect(a.1 == b.1)
    }

    @Test func differentSeedsDiffer() throws {
        let a = try SimCluster(nodes: 3, seed: 1, faults: .all)
        let b = try SimCluster(nodes: 3, seed: 2, faults: .all)
        for _ in 0..<300 {
            a.runRound()
            b.runRound()
        }
        #expect(a.trace != b.trace)
    }

    /// A restarted core resumes with its durable term, vote and log, and re-applies nothing
    /// the state machine already holds.
    @Test func restartKeepsTermVoteAndApplied() throws {
        let c = try SimCluster(nodes: 3, seed: 9)
        c.campaign(1)
        c.stabilize()
        try c.propose(1, [[1], [2], [3]])
        c.stabilize()
        let before = try #require(c.core(2))
        c.crash(2)
        try c.restart(2)
        c.stabilize()
        let after = try #require(c.core(2))
        #expect(after.term == before.term)
        #expect(after.vote == before.vote)
        #expect(after.lastIndex == before.lastIndex)
        #expect(c.checker.violations.isEmpty)
    }

    /// An on-disk state machine that already holds index N is not given entries up to N again;
    /// one that claims an index past the log is refused with both indexes in the error.
    @Test func appliedIndexFromStateMachine() throws {
        let s = MemoryLogStorage(voters: [1])
        try s.append((1...6).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [UInt8($0)]) })
        s.setHardState(HardState(term: 1, vote: 1, commit: 3))
        var core = try RaftCore(configuration: RaftConfiguration(id: 1), storage: s, applied: 5)
        #expect(core.appliedIndex == 5)
        #expect(core.commitIndex == 5)  // what the state machine applied was committed
        let rd = try core.ready()
        #expect(rd.committedEntries.isEmpty)
        do {
            _ = try RaftCore(configuration: RaftConfiguration(id: 1), storage: s, applied: 9)
            Issue.record("a state machine ahead of the log was accepted")
        } catch {
            #expect(error.message.contains("9") && error.message.contains("6"))
        }
    }

    /// A hard state whose commit index is past the log (a disk that lost its tail) starts as a
    /// follower with the commit clamped, instead of crashing.
    @Test func commitPastLogIsClamped() throws {
        let s = MemoryLogStorage(voters: [1, 2, 3])
        try s.append([LogEntry(term: 1, index: 1)])
        s.setHardState(HardState(term: 1, vote: 1, commit: 50))
        let core = try RaftCore(configuration: RaftConfiguration(id: 1), storage: s)
        #expect(core.commitIndex == 1)
        #expect(core.role == .follower)
    }
}

@Suite("Malformed peer messages")
struct MalformedMessageTests {
    static func follower() throws -> RaftCore {
        var c = RaftConfiguration(id: 2)
        c.preVote = false
        return try RaftCore(configuration: c, storage: MemoryLogStorage(voters: [1, 2, 3]))
    }

    static func append(_ prev: UInt64, _ entries: [(UInt64, UInt64)], commit: UInt64 = 0, term: UInt64 = 2) -> Message {
        Message(
            from: 1, to: 2, term: Term(rawValue: term),
            kind: .appendEntries(AppendEntries(
                prevLogIndex: LogIndex(rawValue: prev), prevLogTerm: prev == 0 ? .zero : 1,
                entries: entries.map { LogEntry(term: Term(rawValue: $0.1), index: LogIndex(rawValue: $0.0)) },
                leaderCommit: LogIndex(rawValue: commit))))
    }

    static let badAppends: [(String, Message)] = [
        ("entries not starting at prev+1", append(0, [(3, 1)])),
        ("entries not consecutive", append(0, [(1, 1), (5, 1)], commit: 5)),
        ("entry term past the sender's term", append(0, [(1, 7)])),
        ("entry terms going backwards", append(0, [(1, 2), (2, 1)])),
        ("indexes overflowing", append(UInt64.max - 1, [(UInt64.max, 1), (0, 1)])),
        ("sender is nobody", from(.none, append(0, [(1, 2)]))),
        ("sender is the receiver itself", from(2, append(0, [(1, 2)]))),
        ("vote request from nobody", Message(from: .none, to: 2, term: 5, kind: .requestVote(RequestVote(lastLogIndex: 9, lastLogTerm: 4)))),
        ("vote request from itself", Message(from: 2, to: 2, term: 5, kind: .requestVote(RequestVote(lastLogIndex: 9, lastLogTerm: 4)))),
    ]

    static func from(_ sender: NodeID, _ m: Message) -> Message {
        var m = m
        m.from = sender
        return m
    }

    @Test(arguments: badAppends)
    func malformedAppendIsRefusedAndChangesNothing(_ c: (String, Message)) throws {
        var core = try Self.follower()
        let before = core.status()
        do {
            try core.step(c.1)
            Issue.record("\(c.0): accepted")
        } catch {
            #expect(error.code == .invalidMessage, "\(c.0)")
        }
        #expect(core.status() == before, "\(c.0)")
        #expect(try !core.hasReady || core.ready().entries.isEmpty, "\(c.0)")
    }

    @Test func snapshotWithInvalidMembershipIsRefused() throws {
        var core = try Self.follower()
        for voters: [NodeID] in [[], [1, 1, 2], [0, 1]] {
            let snap = Snapshot(metadata: SnapshotMetadata(index: 10, term: 1, confState: ConfState(voters: voters)))
            let m = Message(from: 1, to: 2, term: 1, kind: .installSnapshot(InstallSnapshot(snapshot: snap)))
            #expect(throws: RaftError.self) { try core.step(m) }
        }
        #expect(core.commitIndex == .zero)
    }

    /// Answers about entries the leader never had (or absurd hints) are ignored: no trap, and
    /// the leader keeps committing.
    @Test func absurdAnswersDoNotStopTheLeader() throws {
        let cluster = try SimCluster(nodes: 3, seed: 5)
        cluster.campaign(1)
        cluster.stabilize()
        let absurd: [AppendEntriesResponse] = [
            AppendEntriesResponse(index: LogIndex(rawValue: .max)),
            AppendEntriesResponse(index: 1000),
            AppendEntriesResponse(index: 1, reject: true, rejectHint: LogIndex(rawValue: .max), rejectHintTerm: 1),
            AppendEntriesResponse(index: LogIndex(rawValue: .max), reject: true, rejectHint: LogIndex(rawValue: .max), rejectHintTerm: 9),
        ]
        for r in absurd {
            for from: NodeID in [2, 3] {
                cluster.inject(Message(from: from, to: 1, term: cluster.core(1)!.term, kind: .appendEntriesResponse(r)))
            }
        }
        cluster.stabilize()
        try cluster.propose(1, [[7]])
        cluster.stabilize()
        for _ in 0..<3 {
            cluster.tick(1)
            cluster.stabilize()
        }
        #expect(cluster.core(1)?.role == .leader)
        #expect(cluster.core(1)?.commitIndex == cluster.core(1)?.lastIndex)
        #expect(cluster.machine(3).lastCommand == [7])
        // The answers carrying indexes past 2^62 are refused as malformed (and recorded as
        // refusals by the simulation); nothing else went wrong.
        #expect(cluster.checker.violations.allSatisfy { $0.contains("is out of range") }, "\(cluster.checker.violations)")
    }

    /// A read whose confirming heartbeats were all lost is confirmed by the next periodic
    /// heartbeat round.
    @Test func lostReadHeartbeatsAreRetried() throws {
        let cluster = try SimCluster(nodes: 3, seed: 6)
        cluster.campaign(1)
        cluster.stabilize()
        var confirmed: [ReadState] = []
        cluster.onReady = { _, rd in confirmed += rd.readStates }
        _ = try cluster.withCore(1) { (c: inout RaftCore) throws(RaftError) in try c.readIndex(context: [9]) }
        let lost = cluster.dropQueued { if case .heartbeat = $0.kind { return true } else { return false } }
        #expect(lost == 2)
        cluster.stabilize()
        #expect(confirmed.isEmpty)
        cluster.tick(1)
        cluster.stabilize()
        #expect(confirmed.map(\.context) == [[9]])
    }
}

@Suite("Ready sync contract")
struct ReadySyncTests {
    /// Entries, a new term or a vote must be durable before the late messages go out; a
    /// hard state whose only change is the commit index need not be synced.
    @Test func onlyCommitChangesSkipTheSync() throws {
        let c = try SimCluster(nodes: 3, seed: 3)
        var readies: [(NodeID, Ready)] = []
        c.onReady = { id, rd in readies.append((id, rd)) }
        c.campaign(1)
        c.stabilize()
        // Voting and campaigning changed term and vote: synced.
        #expect(readies.contains { $0.1.hardState?.vote != nil && $0.1.hardState?.vote != NodeID.none && $0.1.mustSync })
        readies = []
        try c.propose(1, [[1]])
        c.stabilize()
        let withEntries = readies.filter { !$0.1.entries.isEmpty }
        #expect(!withEntries.isEmpty && withEntries.allSatisfy { $0.1.mustSync })
        // Followers learn the new commit index from the next append: a commit-only change.
        let commitOnly = readies.filter { $0.1.hardState != nil && $0.1.entries.isEmpty && $0.1.snapshot == nil }
        #expect(!commitOnly.isEmpty)
        #expect(commitOnly.allSatisfy { !$0.1.mustSync })
    }
}

@Suite("Manual clock")
struct ManualClockTests {
    /// Node tests move time only through the manual clock, so a sleep it loses stays asleep
    /// (and counted as a sleeper) forever. A sleep whose task is cancelled before the sleep
    /// registers must end at once with `CancellationError`, and never count as a sleeper.
    @Test func sleepCancelledBeforeItRegistersEnds() async {
        let clock = ManualClock()
        let deadline = clock.now.advanced(by: .seconds(1))
        let done = Flag()
        let t = Task {
            defer { done.set() }
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(until: deadline, tolerance: nil)
        }
        for _ in 0..<10_000 where !done.isSet { await Task.yield() }
        let ended = done.isSet
        if !ended { clock.advance(by: .seconds(1)) }  // lets a lost sleep go, so the test ends
        #expect(ended, "the cancelled sleep was left waiting for the clock")
        let result = await t.result
        #expect(throws: CancellationError.self) { try result.get() }
        #expect(clock.sleeperCount == 0)
    }

    /// A sleep cancelled while asleep ends with `CancellationError`; one whose deadline comes
    /// ends normally.
    @Test func sleepEndsOnAdvanceOrCancel() async throws {
        let clock = ManualClock()
        let woken = Task { try await clock.sleep(until: clock.now.advanced(by: .milliseconds(100)), tolerance: nil) }
        let cancelled = Task { try await clock.sleep(until: clock.now.advanced(by: .seconds(100)), tolerance: nil) }
        for _ in 0..<10_000 where clock.sleeperCount < 2 { await Task.yield() }
        #expect(clock.sleeperCount == 2)
        clock.advance(by: .milliseconds(100))
        try await woken.value
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(clock.sleeperCount == 0)
    }
}
