import Raft
import RaftTestKit
import Synchronization
import Testing

/// A storage that fails reads of one chosen entry (an unreadable sector, a bad checksum outside
/// the cache) and passes everything else to the storage it wraps.
final class FailingReads: ForwardingStorage, @unchecked Sendable {
    // Used by one node's run loop at a time; the faults are switched with atomics from tests.
    let failing = Atomic<UInt64>(0)
    /// While set, `snapshot()` answers "being prepared, ask again later".
    let snapshotBusy = Atomic<Bool>(false)
    /// While set, `entries(in:)` returns nothing (a storage breaking its contract).
    let returnsNothing = Atomic<Bool>(false)

    /// From now on reads of entry `index` fail with an I/O error (zero: none fail).
    func failReads(at index: LogIndex) { failing.store(index.rawValue, ordering: .relaxed) }

    func ioError(_ index: LogIndex) -> RaftError { RaftError(.io, "injected read error at entry \(index)") }

    override func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        let f = LogIndex(rawValue: failing.load(ordering: .relaxed))
        if f != .zero && range.contains(f) { throw ioError(f) }
        if returnsNothing.load(ordering: .relaxed) { return [] }
        return try base.entries(in: range, maxBytes: maxBytes)
    }
    override func term(at index: LogIndex) throws(RaftError) -> Term {
        let f = failing.load(ordering: .relaxed)
        if f != 0 && index.rawValue == f { throw ioError(index) }
        return try base.term(at: index)
    }
    override func snapshot() throws(RaftError) -> Snapshot {
        if snapshotBusy.load(ordering: .relaxed) { throw RaftError(.snapshotTemporarilyUnavailable, "a snapshot is being prepared") }
        return try base.snapshot()
    }
}

/// Issue 12, finding 1: a storage read error leaves the core as a typed error that stops the
/// node. Before, the core turned it into an empty batch while still reporting work to do, and
/// the node's loop spun forever without reading its inbox (ticks, `stop()` and shutdown never
/// handled); or into "not held", granting a vote on a wrong up-to-date check.
@Suite("Storage failures")
struct StorageFailureTests {
    /// A follower holding entries 1...5 of term 1, all committed, restarted with entry 3
    /// unreadable.
    static func restartedFollower() throws -> (RaftCore, FailingReads) {
        let memory = MemoryLogStorage(voters: [1, 2, 3])
        try memory.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0)), kind: .command, data: [UInt8($0)]) })
        memory.setHardState(HardState(term: 1, vote: 1, commit: 5))
        let storage = FailingReads(memory)
        storage.failReads(at: 3)
        return (try RaftCore(configuration: RaftConfiguration(id: 2), storage: storage), storage)
    }

    /// Node 1 of a two-voter cluster whose log ends in term 1, elected leader of term 2.
    static func leaderOfTerm2(over storage: FailingReads) throws -> RaftCore {
        var config = RaftConfiguration(id: 1)
        config.preVote = false
        var core = try RaftCore(configuration: config, storage: storage)
        try core.campaign()
        try core.step(Message(from: 2, to: 1, term: 2, kind: .requestVoteResponse(RequestVoteResponse(granted: true))))
        #expect(core.role == .leader)
        return core
    }

    @Test func readErrorWhileReplayingCommittedEntriesThrowsFromReady() throws {
        var (core, _) = try Self.restartedFollower()
        #expect(core.hasReady)
        let error = #expect(throws: RaftError.self) { _ = try core.ready() }
        #expect(error?.code == .io)
        #expect(error?.message.contains("entries 1...5") == true)
        // The failure is sticky: the core refuses everything until the storage is reopened.
        #expect(core.storageFailure?.code == .io)
        #expect(throws: RaftError.self) { try core.tick() }
        #expect(throws: RaftError.self) { _ = try core.ready() }
    }

    @Test func readErrorOnTheLastTermRefusesToVote() throws {
        let memory = MemoryLogStorage(voters: [1, 2, 3])
        try memory.append((1...3).map { LogEntry(term: 2, index: LogIndex(rawValue: UInt64($0)), kind: .command) })
        memory.setHardState(HardState(term: 2, vote: .none, commit: 0))
        let storage = FailingReads(memory)
        var core = try RaftCore(configuration: RaftConfiguration(id: 2), storage: storage)
        storage.failReads(at: 3)
        // A candidate whose log is behind ours (term 1 < our last term 2) must not get the vote;
        // with the last term unreadable the core cannot decide, so it must not answer at all.
        let request = Message(from: 1, to: 2, term: 3, kind: .requestVote(RequestVote(lastLogIndex: 3, lastLogTerm: 1)))
        #expect(throws: RaftError.self) { try core.step(request) }
        #expect(core.vote != 1)
        #expect(throws: RaftError.self) { _ = try core.ready() }
    }

    @Test func leaderSendingToALaggingFollowerThrowsInsteadOfSkipping() throws {
        let memory = MemoryLogStorage(voters: [1, 2])
        try memory.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0)), kind: .command) })
        memory.setHardState(HardState(term: 1, vote: 1, commit: 5))
        let storage = FailingReads(memory)
        // Win the election (term 2), then hear from the follower that it holds only entry 1.
        var core = try Self.leaderOfTerm2(over: storage)
        storage.failReads(at: 2)
        let reject = AppendEntriesResponse(index: 5, reject: true, rejectHint: 1, rejectHintTerm: 1)
        let error = #expect(throws: RaftError.self) {
            try core.step(Message(from: 2, to: 1, term: 2, kind: .appendEntriesResponse(reject)))
        }
        #expect(error?.code == .io)
    }

    /// A storage that returns no entries for a range it holds breaks its contract; the core
    /// stops with an error instead of handing out empty batches forever (review of issue 12).
    @Test func storageReturningNothingStopsTheCore() throws {
        var (core, storage) = try Self.restartedFollower()
        storage.failReads(at: 0)
        storage.returnsNothing.store(true, ordering: .relaxed)
        let error = #expect(throws: RaftError.self) { _ = try core.ready() }
        #expect(error?.code == .storage)
        #expect(core.storageFailure != nil)
    }

    /// "Snapshot temporarily unavailable" is what its name says: the leader tries again later
    /// instead of stopping (review of issue 12).
    @Test func snapshotTemporarilyUnavailableIsRetriedNotFatal() throws {
        let memory = MemoryLogStorage(voters: [1, 2])
        try memory.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0)), kind: .command) })
        memory.setHardState(HardState(term: 1, vote: 1, commit: 5))
        try memory.createSnapshot(at: 4, confState: nil, data: [7])
        try memory.compact(upTo: 4)
        let storage = FailingReads(memory)
        var core = try Self.leaderOfTerm2(over: storage)
        _ = try core.ready()
        storage.snapshotBusy.store(true, ordering: .relaxed)
        // The follower holds nothing: it needs the snapshot, which is being prepared.
        let reject = AppendEntriesResponse(index: 5, reject: true, rejectHint: 0, rejectHintTerm: 0)
        try core.step(Message(from: 2, to: 1, term: 2, kind: .appendEntriesResponse(reject)))
        #expect(core.storageFailure == nil)
        #expect(core.status().members.first { $0.id == 2 }?.state == .probe)
        storage.snapshotBusy.store(false, ordering: .relaxed)
        try core.step(Message(from: 2, to: 1, term: 2, kind: .heartbeatResponse(HeartbeatResponse())))
        let rd = try core.ready()
        let sent = (rd.messages + rd.messagesAfterPersist).contains { if case .installSnapshot = $0.kind { true } else { false } }
        #expect(sent, "the snapshot goes out once the storage has it")
    }

    /// Through a real node: restarting with an unreadable committed entry stops the node with
    /// the error, within a bounded number of ticks; `run()` throws it.
    @Test func nodeStopsWhenReplayingAnUnreadableEntry() async throws {
        let memories = Dictionary(uniqueKeysWithValues: ([1, 2, 3] as [NodeID]).map { ($0, MemoryLogStorage(voters: [1, 2, 3])) })
        let failOnOpen = Mutex<[NodeID: LogIndex]>([:])
        let h = NodeHarness<KVMachine>(make: { _ in KVMachine() }, openStorage: { id in
            let w = FailingReads(memories[id]!)
            if let index = failOnOpen.withLock({ $0[id] }) { w.failReads(at: index) }
            return w
        })
        try h.startAll()
        for i in 0..<5 { _ = try await h.write("k\(i)=v\(i)") }
        let leader = try #require(await h.leader())
        let victim = h.ids.first { $0 != leader }!
        try await h.waitFor(victim) { $0.applied >= 6 }
        await h.stop(victim)
        // The restarted node replays its log from the start; entry 2 cannot be read.
        failOnOpen.withLock { $0[victim] = 2 }
        try h.start(victim)
        for _ in 0..<20 where !h.ended.withLock({ $0.dead.contains(victim) }) { await h.tick() }
        let failure = h.failures.first { $0.hasPrefix("node \(victim):") }
        #expect(failure?.contains("injected read error at entry 2") == true, "\(h.failures)")
        await h.stopAll()
    }

    /// At run time: a leader that cannot read the entries a follower needs stops with the error
    /// instead of skipping that follower forever.
    @Test func leaderStopsWhenAFollowerNeedsAnUnreadableEntry() async throws {
        let memories = Dictionary(uniqueKeysWithValues: ([1, 2, 3] as [NodeID]).map { ($0, MemoryLogStorage(voters: [1, 2, 3])) })
        let wrappers = Mutex<[NodeID: FailingReads]>([:])
        let h = NodeHarness<KVMachine>(make: { _ in KVMachine() }, openStorage: { id in
            let w = FailingReads(memories[id]!)
            wrappers.withLock { $0[id] = w }
            return w
        })
        let (leader, stopped) = try await h.startWithOneFollowerStopped()
        for i in 0..<5 { _ = try await h.propose("k\(i)=v\(i)", at: leader) }
        let missed = try await h.nodes[leader]!.status().raft.lastIndex
        wrappers.withLock { $0[leader]!.failReads(at: missed) }
        try h.start(stopped)
        for _ in 0..<30 where !h.ended.withLock({ $0.dead.contains(leader) }) { await h.tick() }
        let failure = h.failures.first { $0.hasPrefix("node \(leader):") }
        #expect(failure?.contains("injected read error at entry \(missed)") == true, "\(h.failures)")
        await h.stopAll()
    }
}
