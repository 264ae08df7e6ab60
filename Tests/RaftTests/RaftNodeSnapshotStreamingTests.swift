import Dispatch
import Foundation
import RaftTestKit
import Synchronization
import Testing

@testable import Raft

/// A key-value state machine that streams its snapshot out one key at a time (so the file holds
/// many frames) and whose restore can be held at a gate, so a test can watch what the node does
/// while it restores.
final class StreamingKV: StateMachine {
    let inner: KVMachine
    let restoreGate: Gate?

    /// `view` is where the test sees the state (the node owns the machine).
    init(restoreGate: Gate? = nil, view: KVView = KVView()) {
        self.restoreGate = restoreGate
        inner = KVMachine(view: view)
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] { try inner.apply(entries) }
    func prepareSnapshot() throws -> [String: String] { inner.values }

    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws {
        for (k, v) in context.sorted(by: { $0.key < $1.key }) { try output.write(Array("\(k)=\(v)\n".utf8)) }
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        if let gate = restoreGate {
            gate.started.signal()
            // Bounded, so a failing test cannot hang the node's shutdown.
            _ = gate.semaphore.wait(timeout: .now() + 20)
        }
        try inner.recoverSnapshot(from: input, metadata: metadata)
    }
}

/// `node`'s status, or `nil` if its loop does not answer within `limit` of real time (it is
/// blocked). A late answer is abandoned, not waited for.
func status<SM: StateMachine>(of node: RaftNode<SM>?, within limit: Duration = .seconds(2)) async -> NodeStatus? {
    guard let node else { return nil }
    let first = FirstAnswer()
    return await withCheckedContinuation { c in
        first.waiter.withLock { $0 = c }
        Task { first.give(try? await node.status()) }
        Task {
            try? await Task.sleep(for: limit)
            first.give(nil)
        }
    }
}

/// Hands the first of several answers to a waiting continuation.
final class FirstAnswer: Sendable {
    let waiter = Mutex<CheckedContinuation<NodeStatus?, Never>?>(nil)

    func give(_ s: NodeStatus?) {
        let w = waiter.withLock { w in
            defer { w = nil }
            return w
        }
        w?.resume(returning: s)
    }
}

extension NodeHarness {
    /// One tick that waits for no node longer than `limit`: a node whose loop is blocked does
    /// not hold the others' time back (as real time would not). Returns each node's status,
    /// `nil` for one that did not answer in time.
    func tickWithoutWaiting(limit: Duration = .seconds(2)) async -> [NodeID: NodeStatus?] {
        clock.advance(by: .milliseconds(100))
        var spins = 0
        while clock.sleeperCount < nodes.count && spins < 10_000 {
            await Task.yield()
            spins += 1
        }
        var out: [NodeID: NodeStatus?] = [:]
        for _ in 0..<3 {
            for id in ids where nodes[id] != nil { out[id] = await status(of: nodes[id], within: limit) }
        }
        return out
    }
}

@Suite("RaftNode snapshot streaming")
struct RaftNodeSnapshotStreamingTests {
    /// A follower catching up by snapshot restores its state machine off its loop: while the
    /// restore is held at a gate, the follower answers status and heartbeats, no election
    /// happens, the cluster commits proposals with the follower appending them, and nothing is
    /// applied on the follower. Released, the follower applies what it held and converges.
    @Test func followerKeepsAnsweringWhileItsStateMachineRestores() async throws {
        let gate = Gate()
        defer { gate.open() }
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView()]
        let h = NodeHarness<StreamingKV>(make: { StreamingKV(restoreGate: gate, view: views[$0]!) }) { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
            c.snapshotChunkBytes = 512
        }
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        let value = String(repeating: "v", count: 2_000)
        for k in 0..<40 { _ = try await h.propose("key\(k)=\(value)\(k)", at: leader) }
        let compacted = try await h.waitFor(leader) { $0.raft.firstIndex > 2 && $0.snapshotIndex >= 40 }
        #expect(compacted.raft.firstIndex > 2, "the leader compacted past the stopped node")
        let heartbeats = Atomic<Int>(0)
        let answers = Atomic<Int>(0)
        let chunks = Atomic<Int>(0)
        h.transport.setDropFilter { m in
            if m.from == leader && m.to == lagging, case .heartbeat = m.kind { heartbeats.add(1, ordering: .relaxed) }
            if m.from == lagging && m.to == leader, case .heartbeatResponse = m.kind { answers.add(1, ordering: .relaxed) }
            if case .snapshotChunk = m.kind { chunks.add(1, ordering: .relaxed) }
            return false
        }
        try h.start(lagging)
        var inRestore = false
        for _ in 0..<60 where !inRestore {
            _ = await h.tickWithoutWaiting()
            inRestore = gate.started.wait(timeout: .now()) == .success
        }
        #expect(inRestore, "the follower's state machine is inside its restore")
        #expect(chunks.load(ordering: .relaxed) > 100, "a snapshot of many chunks: \(chunks.load(ordering: .relaxed))")
        guard let restoring = await status(of: h.nodes[lagging]) else {
            Issue.record("the follower does not answer while its state machine restores: its loop is blocked")
            gate.open()
            await h.stopAll()
            return
        }
        #expect(restoring.restoringSnapshot != nil && restoring.applied < compacted.snapshotIndex)
        let before = try #require(await status(of: h.nodes[leader]))
        let heartbeatsBefore = heartbeats.load(ordering: .relaxed)
        let answersBefore = answers.load(ordering: .relaxed)
        // Well past two election timeouts, with the restore held.
        for tick in 0..<30 {
            let s = await h.tickWithoutWaiting()
            guard let f = s[lagging] ?? nil else {
                Issue.record("the restoring follower did not answer at tick \(tick)")
                gate.open()
                await h.stopAll()
                return
            }
            #expect(f.raft.role == .follower && f.raft.leader == leader && f.raft.term == before.raft.term, "tick \(tick): \(f.raft)")
            #expect(f.applied < compacted.snapshotIndex, "nothing applied while restoring")
            #expect(f.restoringSnapshot != nil)
        }
        #expect(heartbeats.load(ordering: .relaxed) - heartbeatsBefore >= 30)
        #expect(answers.load(ordering: .relaxed) - answersBefore >= 30, "the follower kept answering heartbeats")
        // The cluster commits; the follower appends (its log grows) but applies nothing yet.
        for k in 40..<50 { _ = try await h.propose("key\(k)=late\(k)", at: leader) }
        let during = try #require(await status(of: h.nodes[leader]))
        let follower = try #require(await status(of: h.nodes[lagging]))
        #expect(during.raft.term == before.raft.term && during.raft.leader == leader, "no election")
        #expect(follower.raft.lastIndex >= during.raft.commit, "the follower appended while restoring")
        #expect(follower.applied < compacted.snapshotIndex)
        #expect(views[lagging]!.restores == 0)
        gate.open()
        for _ in 0..<60 {
            await h.tick()
            if let s = try? await h.nodes[lagging]!.status(), s.applied >= during.applied, s.restoringSnapshot == nil { break }
        }
        let after = try await h.nodes[lagging]!.status()
        #expect(after.restoringSnapshot == nil)
        #expect(after.applied >= during.applied)
        #expect(views[lagging]!.restores == 1)
        #expect(views[lagging]!.values == views[leader]!.values)
        #expect(views[lagging]!.values.count == 50)
        #expect(try await h.nodes[leader]!.status().raft.term == before.raft.term)
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }

    /// A snapshot of megabytes, over a hundred chunks, each read of it slowed down, is streamed
    /// over file storage while the cluster ticks: every node answers at every tick, heartbeats
    /// keep the term and leader, and nothing of a snapshot file is read or written on a run
    /// loop. No read takes more than one frame of the file, though the whole is megabytes.
    @Test func largeSnapshotStreamsOffTheLoopWithoutAnElection() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-stream-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fs = ObservedFileSystem()
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView()]
        let h = NodeHarness<StreamingKV>(
            make: { StreamingKV(view: views[$0]!) },
            configure: { c in
                c.snapshotEvery = 40
                c.compactionTrail = 2
                c.snapshotChunkBytes = 16 << 10
                c.snapshotRetryTicks = 20
            }, openStorage: { id in try FileLogStorage(directory: "\(root)/\(id)", voters: [1, 2, 3], fileSystem: fs) })
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        let value = String(repeating: "x", count: 64 << 10)
        for k in 0..<48 { _ = try await h.propose("k\(k)=\(value)", at: leader) }
        let compacted = try await h.waitFor(leader) { $0.raft.firstIndex > 2 && $0.snapshotIndex >= 40 }
        #expect(compacted.raft.firstIndex > 2)
        let answers = Atomic<Int>(0)
        let chunks = Atomic<Int>(0)
        h.transport.setDropFilter { m in
            if m.from == lagging && m.to == leader, case .heartbeatResponse = m.kind { answers.add(1, ordering: .relaxed) }
            if case .snapshotChunk = m.kind { chunks.add(1, ordering: .relaxed) }
            return false
        }
        // Each read of a snapshot's data takes 15 ms: reading one whole takes most of a second.
        fs.readDelay.withLock { $0 = .milliseconds(15) }
        try h.start(lagging)
        var caughtUp = false
        var ticks = 0
        var answersWhileStreaming = 0
        while !caughtUp && ticks < 200 {
            ticks += 1
            let before = chunks.load(ordering: .relaxed)
            let answered = answers.load(ordering: .relaxed)
            // Real time passes too, so a slow read spans ticks as it would in production.
            try await Task.sleep(for: .milliseconds(20))
            let s = await h.tickWithoutWaiting(limit: .milliseconds(500))
            for id in h.ids {
                guard let st = s[id] ?? nil else {
                    Issue.record("node \(id) did not answer within 500 ms at tick \(ticks)")
                    fs.readDelay.withLock { $0 = .zero }
                    await h.stopAll()
                    return
                }
                #expect(st.raft.term == compacted.raft.term, "node \(id) at tick \(ticks): term \(st.raft.term)")
                #expect(st.raft.leader == leader, "node \(id) at tick \(ticks): leader \(st.raft.leader)")
            }
            if chunks.load(ordering: .relaxed) > before { answersWhileStreaming += answers.load(ordering: .relaxed) - answered }
            if let f = s[lagging] ?? nil, f.applied >= compacted.applied, f.restoringSnapshot == nil { caughtUp = true }
        }
        fs.readDelay.withLock { $0 = .zero }
        #expect(caughtUp, "the follower caught up in \(ticks) ticks")
        #expect(ticks > 5, "the transfer spanned many ticks: \(ticks)")
        #expect(answersWhileStreaming > 3, "heartbeats were answered while chunks flowed: \(answersWhileStreaming)")
        let sent = chunks.load(ordering: .relaxed)
        #expect(sent > 150, "\(sent) chunks")
        #expect(views[lagging]!.values == views[leader]!.values)
        #expect(views[lagging]!.restores == 1)
        let r = fs.record.withLock { $0 }
        #expect(r.dataReadsOnLoop.isEmpty, "snapshot data read on a run loop: \(r.dataReadsOnLoop.prefix(5))")
        #expect(r.writesOnLoop.isEmpty, "snapshot data written on a run loop: \(r.writesOnLoop.prefix(5))")
        #expect(r.receivedBytesWritten > 2 << 20, "the follower wrote what it received into a file: \(r.receivedBytesWritten)")
        #expect(r.largestRead <= 256 << 10, "largest read \(r.largestRead) bytes, of a snapshot of \(r.receivedBytesWritten)")
        await h.stopAll()
        #expect(h.failures.isEmpty, "\(h.failures)")
    }
}
