import Raft
import RaftTestKit
import Synchronization
import Testing

/// Sees every entry, and answers only commands (its result is the command's index). What it
/// saw goes to `seen`, where the test looks (the node owns the machine).
final class IndexRecorder: StateMachine {
    let seen: SeenEntries
    let resultForNoops: Bool
    init(resultForNoops: Bool = false, seen: SeenEntries = SeenEntries()) {
        self.resultForNoops = resultForNoops
        self.seen = seen
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        var out: [String] = []
        for e in entries {
            seen.append(e)
            if e.kind == .command || resultForNoops { out.append("\(e.index)") }
        }
        return out
    }
    func prepareSnapshot() throws -> Int { seen.entries.count }
    static func saveSnapshot(_ context: Int, to output: SnapshotOutput) throws { try output.write(Int64(context)) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {}
}

/// The entries an ``IndexRecorder`` saw: index and kind, in order.
final class SeenEntries: Sendable {
    private let seen = Mutex<[(LogIndex, LogEntry.Kind)]>([])
    var entries: [(LogIndex, LogEntry.Kind)] { seen.withLock { $0 } }
    func append(_ e: LogEntry) { seen.withLock { $0.append((e.index, e.kind)) } }
}

/// The API polish of issue 12: what a new user driving the core and the node ran into.
@Suite("API")
struct APITests {
    static func leader() throws -> RaftCore {
        var config = RaftConfiguration(id: 1)
        config.preVote = false
        var core = try RaftCore(configuration: config, storage: MemoryLogStorage(voters: [1]))
        try core.campaign()
        return core
    }

    /// An empty proposal is refused with a typed error; before, it returned `nil`, the same value
    /// as "forwarded to the leader".
    @Test func emptyProposalIsRefusedNotMistakenForForwarded() throws {
        var core = try Self.leader()
        #expect(core.role == .leader)
        let error = #expect(throws: RaftError.self) { try core.propose(commands: []) }
        #expect(error?.code == .invalidArgument)
        // A follower that forwards still answers nil, and only then.
        var c2 = RaftConfiguration(id: 2)
        c2.preVote = false
        var follower = try RaftCore(configuration: c2, storage: MemoryLogStorage(voters: [1, 2]))
        try follower.step(Message(from: 1, to: 2, term: 1, kind: .heartbeat(Heartbeat(commit: .zero))))
        #expect(try follower.propose(commands: [[1]]) == nil)
        #expect(throws: RaftError.self) { try follower.propose(commands: []) }
    }

    /// `campaign()` says whether it did anything: not on a leader, not on a non-voter.
    @Test func campaignReportsWhetherAnElectionStarted() throws {
        var core = try Self.leader()
        #expect(try core.campaign() == false)
        var outsider = try RaftCore(configuration: RaftConfiguration(id: 9), storage: MemoryLogStorage(voters: [1, 2, 3]))
        #expect(try outsider.campaign() == false)
        #expect(outsider.role == .follower)
        var voter = try RaftCore(configuration: RaftConfiguration(id: 2), storage: MemoryLogStorage(voters: [1, 2, 3]))
        #expect(try voter.campaign() == true)
        #expect(voter.role == .preCandidate)
    }

    /// A leader's view of its followers names their state with an enum.
    @Test func memberStateIsAnEnum() throws {
        var config = RaftConfiguration(id: 1)
        config.preVote = false
        var core = try RaftCore(configuration: config, storage: MemoryLogStorage(voters: [1, 2]))
        try core.campaign()
        try core.step(Message(from: 2, to: 1, term: 1, kind: .requestVoteResponse(RequestVoteResponse(granted: true))))
        let member = try #require(core.status().members.first { $0.id == 2 })
        #expect(member.state == .probe)
        #expect("\(member.state)" == "probe")
    }

    /// Reads registered before the heartbeats leave share one round (batching): two reads, one
    /// heartbeat per follower, and one quorum of answers confirms both (review of issue 12:
    /// before, every read started a round and a broadcast of its own).
    @Test func readsRegisteredTogetherShareOneRound() throws {
        var config = RaftConfiguration(id: 1)
        config.preVote = false
        let storage = MemoryLogStorage(voters: [1, 2, 3])
        var core = try RaftCore(configuration: config, storage: storage)
        try core.campaign()
        try core.step(Message(from: 2, to: 1, term: 1, kind: .requestVoteResponse(RequestVoteResponse(granted: true))))
        // Commit the leader's no-op so reads are served.
        var rd = try core.ready()
        try storage.persist(rd)
        try core.advance(rd)
        try core.step(Message(from: 2, to: 1, term: 1, kind: .appendEntriesResponse(AppendEntriesResponse(index: 1))))
        rd = try core.ready()
        try storage.persist(rd)
        try core.advance(rd)
        #expect(core.commitIndex == 1)
        try core.readIndex(context: [1])
        try core.readIndex(context: [2])
        rd = try core.ready()
        let heartbeats = (rd.messages + rd.messagesAfterPersist).compactMap { m -> UInt64? in
            if case .heartbeat(let h) = m.kind { h.round } else { nil }
        }
        #expect(heartbeats == [1, 1], "one round for both reads, one heartbeat per follower")
        try core.advance(rd)
        try core.step(Message(from: 3, to: 1, term: 1, kind: .heartbeatResponse(HeartbeatResponse(round: 1))))
        #expect(try core.ready().readStates.map(\.context) == [[1], [2]])
    }

    /// A batch proposal: one result per command, in order, appended together.
    @Test func batchProposalReturnsOneResultPerCommandInOrder() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.propose("a=0", at: leader)
        let node = h.nodes[leader]!
        let before = try await node.status().raft.lastIndex
        let answered = Flag()
        let t = Task {
            defer { answered.set() }
            return try await node.propose(batch: ["a=1", "a=2", "b=1", "a=3"].map { Array($0.utf8) })
        }
        for _ in 0..<50 where !answered.isSet { await h.tick() }
        // Each result is the previous value of the key: the commands applied in order.
        #expect(try await t.value == ["0", "1", "", "2"])
        #expect(try await node.status().raft.lastIndex == before + 4)
        let empty = await #expect(throws: RaftError.self) { try await node.propose(batch: []) }
        #expect(empty?.code == .invalidArgument)
        await h.stopAll()
    }

    /// No-op entries reach the state machine (it learns every index) but need no result: one
    /// result per command. Before, a state machine had to invent a result for every no-op.
    @Test func noOpsAreSeenButHaveNoResult() async throws {
        let seenBy: [NodeID: SeenEntries] = [1: SeenEntries(), 2: SeenEntries(), 3: SeenEntries()]
        let h = NodeHarness<IndexRecorder>(make: { IndexRecorder(seen: seenBy[$0]!) })
        try h.startAll()
        let leader = try await h.electLeader()
        #expect(try await h.propose("x", at: leader) == "2")
        let seen = seenBy[leader]!.entries
        #expect(seen.first?.0 == 1 && seen.first?.1 == .noop, "the leader's no-op reached the state machine")
        await h.stopAll()
    }

    /// A state machine that still answers no-ops breaks the contract: the node stops with an
    /// error that says what to return.
    @Test func aResultForANoOpIsACountMismatch() async throws {
        let h = NodeHarness<IndexRecorder>(make: { _ in IndexRecorder(resultForNoops: true) })
        try h.startAll()
        for _ in 0..<30 where h.failures.isEmpty { await h.tick() }
        #expect(h.failures.contains { $0.contains("one result per command entry") }, "\(h.failures)")
        await h.stopAll()
    }

    /// The node's `campaign()` answers whether an election started.
    @Test func nodeCampaignAnswers() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        #expect(try await h.nodes[leader]!.campaign() == false)
        await h.stopAll()
        await #expect(throws: RaftError.self) { try await h.nodes[leader]?.campaign() ?? { throw RaftError(.stopped, "gone") }() }
    }

    /// Finding 8: a cancellation is never lost, however it races its proposal and other
    /// proposers' tokens. The leader cannot commit (its followers are stopped) and no tick comes
    /// (no timeout), so a proposal ends only by its cancellation: every task must end with
    /// `CancellationError`. Before, a cancellation posted before its proposal was remembered only
    /// when its token was above every token seen, so racing proposers lost some and their
    /// callers waited for the timeout.
    @Test func cancellationsAreNeverLostBetweenRacingProposers() async throws {
        let h = NodeHarness<KVMachine>()
        try h.startAll()
        let leader = try await h.electLeader()
        for id in h.ids where id != leader { await h.stop(id) }
        let node = h.nodes[leader]!
        var lost = 0
        for round in 0..<200 {
            let tasks = (0..<2).map { k in
                Task { () -> Bool in
                    do {
                        _ = try await node.propose(Array("r\(round)k\(k)=1".utf8))
                        return false
                    } catch is CancellationError {
                        return true
                    } catch {
                        return false
                    }
                }
            }
            // Cancel at different moments: at once, or after letting the proposers run a bit.
            for _ in 0..<(round % 4) { await Task.yield() }
            for t in tasks.reversed() { t.cancel() }
            for t in tasks {
                let ended = Flag()
                let watch = Task {
                    let cancelled = await t.value
                    ended.set()
                    return cancelled
                }
                var spins = 0
                while !ended.isSet && spins < 20_000 {
                    await Task.yield()
                    spins += 1
                    if spins % 100 == 0 { _ = try? await node.status() }
                }
                if ended.isSet {
                    #expect(await watch.value, "round \(round): a cancelled proposal ended without CancellationError")
                } else {
                    lost += 1
                }
            }
            if lost > 0 { break }
        }
        #expect(lost == 0, "cancelled proposals still waiting (their cancellation was lost)")
        // Let whatever still waits end with the node.
        await h.stopAll()
    }
}
