import Dispatch
@testable import Raft
import RaftTestKit
import Synchronization
import Testing

/// Makes the syncs a node's I/O thread runs (the overlapped writes, never the loop's inline
/// ones) wait until released, so a test can look at the node while a batch is being persisted.
final class SyncStall: Sendable {
    let armed = Atomic<Bool>(false)
    let entered = DispatchSemaphore(value: 0)
    let release = DispatchSemaphore(value: 0)
    /// Whether a sync is stalled now.
    let stalled = Atomic<Bool>(false)
    /// Storage reads made while a sync was stalled: the node must make none (the storage
    /// belongs to the write until it ends).
    let readsWhileStalled = Atomic<Int>(0)

    var isStalled: Bool { stalled.load(ordering: .sequentiallyConsistent) }
    var storageReadsWhileStalled: Int { readsWhileStalled.load(ordering: .sequentiallyConsistent) }

    /// Arms the stall and writes on `node` from eight tasks until one of its batches is
    /// persisted by its I/O thread (one that also has committed entries to apply), which then
    /// stalls. Returns the writers (they stop proposing once the stall is entered) and whether
    /// it was entered within ten seconds.
    func stallNextOverlappedWrite<SM: StateMachine>(of node: RaftNode<SM>) async -> (writers: [Task<Void, Never>], entered: Bool) {
        armed.store(true, ordering: .sequentiallyConsistent)
        let writers = (0..<8).map { k in
            Task {
                for n in 0..<500 where self.armed.load(ordering: .sequentiallyConsistent) {
                    _ = try? await node.propose(Array("w\(k)=\(n)".utf8))
                }
            }
        }
        let entered = await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: self.entered.wait(timeout: .now() + 10) == .success) }
        }
        return (writers, entered)
    }
}

final class StallingStorage: ForwardingStorage {
    let stall: SyncStall

    init(_ base: any WritableLogStorage, stall: SyncStall) {
        self.stall = stall
        super.init(base)
    }

    override var performsBlockingIO: Bool { true }

    override func sync() throws(RaftError) {
        if !LoopExecutor.isCurrent, stall.armed.compareExchange(expected: true, desired: false, ordering: .sequentiallyConsistent).exchanged {
            stall.stalled.store(true, ordering: .sequentiallyConsistent)
            stall.entered.signal()
            // Bounded, so a failing test cannot hang the node.
            _ = stall.release.wait(timeout: .now() + 10)
            stall.stalled.store(false, ordering: .sequentiallyConsistent)
        }
        try base.sync()
    }

    func noteRead() {
        if stall.isStalled { stall.readsWhileStalled.add(1, ordering: .sequentiallyConsistent) }
    }

    override func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        noteRead()
        return try super.entries(in: range, maxBytes: maxBytes)
    }
    override func term(at index: LogIndex) throws(RaftError) -> Term {
        noteRead()
        return try super.term(at: index)
    }
    override func firstIndex() -> LogIndex {
        noteRead()
        return super.firstIndex()
    }
    override func lastIndex() -> LogIndex {
        noteRead()
        return super.lastIndex()
    }
    override func snapshot() throws(RaftError) -> Snapshot {
        noteRead()
        return try super.snapshot()
    }
}

/// Reads while the leader's I/O thread persists a batch: the loop serves what needs no storage
/// at once (lease and stale reads), and takes the steps of read rounds (a read, its heartbeats,
/// their answers; a follower's read-index request and its answer), so a linearizable read costs
/// a round trip, not a wait for the write. Nothing that reads the storage runs meanwhile.
@Suite("Node reads during a persist")
struct RaftNodeReadDuringPersistTests {
    static func harness(_ stalls: [NodeID: SyncStall], configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) -> NodeHarness<KVMachine> {
        NodeHarness<KVMachine>(
            make: { _ in KVMachine() }, configure: configure,
            openStorage: { id in StallingStorage(MemoryLogStorage(voters: [1, 2, 3]), stall: stalls[id]!) })
    }

    /// Runs `read` and waits up to two seconds of real time for its answer; `nil` if none came.
    static func answerSoon(_ read: @escaping @Sendable () async throws -> String) async throws -> (task: Task<String, any Error>, served: Bool) {
        let served = Flag()
        let task = Task {
            defer { served.set() }
            return try await read()
        }
        for _ in 0..<200 where !served.isSet { try await Task.sleep(for: .milliseconds(10)) }
        return (task, served.isSet)
    }

    /// Lease, stale and linearizable reads on the leader are all answered while its write stays
    /// stalled, with the value of the last write that completed; the loop reads no storage
    /// meanwhile.
    @Test func readsAreServedWhileABatchIsPersisted() async throws {
        let stalls: [NodeID: SyncStall] = [1: SyncStall(), 2: SyncStall(), 3: SyncStall()]
        let h = Self.harness(stalls) { $0.raft.readLease = ReadLease(maxClockDrift: 0.1) }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v1")
        let node = h.nodes[leader]!
        #expect(try await h.answer { try await node.read(.lease) { $0.values["k"] ?? "" } } == "v1")
        let stall = stalls[leader]!
        let (writers, entered) = await stall.stallNextOverlappedWrite(of: node)
        try #require(entered, "no overlapped write happened")
        // Each answers within two seconds, while the write stays stalled (up to ten).
        let reads: [(String, @Sendable () async throws -> String)] = [
            ("lease", { try await node.read(.lease) { $0.values["k"] ?? "" } }),
            ("stale", { try await node.read(.stale) { $0.values["k"] ?? "" } }),
            ("linearizable", { try await node.read { $0.values["k"] ?? "" } }),
        ]
        for (name, read) in reads {
            let (task, served) = try await Self.answerSoon(read)
            #expect(served, "a \(name) read waited for the leader's write")
            #expect(stall.isStalled, "the write ended before the \(name) read was checked")
            if served { #expect(try await task.value == "v1") } else { task.cancel() }
        }
        #expect(stall.storageReadsWhileStalled == 0, "the leader read its storage while a write was in flight")
        stall.release.signal()
        for w in writers { _ = await w.result }
        #expect(try await h.answer { try await node.read { $0.values["k"] ?? "" } } == "v1")
        #expect(h.failures.isEmpty)
        await h.stopAll()
    }

    /// A leader cut off while its write is stalled answers no linearizable read, neither one
    /// asked while it is cut off (its round reaches nobody) nor one asked once it can reach the
    /// others again, who have elected a new leader and overwritten the key meanwhile (they answer
    /// its round in their later term, which confirms nothing). Once the write ends, the old
    /// leader steps down: its reads are answered by the new leader, with the new value, or time
    /// out; never with the old value.
    @Test func deposedLeaderAnswersNoReadDuringAPersist() async throws {
        let stalls: [NodeID: SyncStall] = [1: SyncStall(), 2: SyncStall(), 3: SyncStall()]
        let h = Self.harness(stalls)
        try h.startAll()
        let old = try await h.electLeader()
        _ = try await h.write("k=old")
        let nodeOld = h.nodes[old]!
        let stall = stalls[old]!
        let (writers, entered) = await stall.stallNextOverlappedWrite(of: nodeOld)
        try #require(entered, "no overlapped write happened")
        h.transport.isolate(old, true, from: h.ids)
        let (cutOff, cutOffServed) = try await Self.answerSoon { try await nodeOld.read { $0.values["k"] ?? "" } }
        #expect(!cutOffServed, "a leader cut off from its quorum answered a linearizable read")

        // The others elect a leader and overwrite the key, ticked without the stalled node's
        // loop (it answers no status until its write ends; its ticks wait for it).
        let others = h.ids.filter { $0 != old }
        let settleOthers = {
            for _ in 0..<4 { for id in others { _ = try? await h.nodes[id]!.status() } }
        }
        let tickOthers = {
            h.clock.advance(by: .milliseconds(100))
            for _ in 0..<10_000 where h.clock.sleeperCount < h.ids.count { await Task.yield() }
            await settleOthers()
        }
        var newLeader: NodeID?
        for _ in 0..<80 where newLeader == nil {
            await tickOthers()
            for id in others where (try? await h.nodes[id]!.status())?.raft.role == .leader { newLeader = id }
        }
        let l = try #require(newLeader)
        let nodeNew = h.nodes[l]!
        _ = try await answerWhileTicking(settle: settleOthers, tick: tickOthers) { try await nodeNew.propose(Array("k=new".utf8)) }

        h.transport.isolate(old, false, from: h.ids)
        let (reconnected, reconnectedServed) = try await Self.answerSoon { try await nodeOld.read { $0.values["k"] ?? "" } }
        #expect(!reconnectedServed, "a deposed leader answered a linearizable read during its write")
        #expect(stall.isStalled, "the write ended before the reads were checked")
        #expect(stall.storageReadsWhileStalled == 0, "the leader read its storage while a write was in flight")

        stall.release.signal()
        for w in writers { _ = await w.result }
        for read in [cutOff, reconnected] {
            let outcome: String
            do { outcome = try await h.answer { try await read.value } } catch let e as RaftError { outcome = "error \(e.code)" }
            #expect(outcome == "new" || outcome.hasPrefix("error"), "a read on the deposed leader returned \(outcome)")
        }
        #expect(h.failures.isEmpty)
        await h.stopAll()
    }
}
