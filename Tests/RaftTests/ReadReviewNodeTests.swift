import Raft
import RaftTestKit
import Synchronization
import Testing

/// Review of `RaftNode.read` (issue 9): stale reads a node can serve.
@Suite("Read review: node reads")
struct ReadReviewNodeTests {
    /// A follower's read tokens travel as read-index contexts, and a new `RaftNode` counts them
    /// from 1 again. After a restart, an answer the leader sent to the previous incarnation (a
    /// duplicate, or one still queued in a transport that reconnects) carries the same context
    /// as the new incarnation's first read, in the same term: the node takes it as the answer
    /// to the new read and serves it at the old index, missing a write that completed before
    /// the read was called.
    ///
    /// Expected: the read never returns the value overwritten before it was called.
    @Test func restartedFollowerIgnoresAnswersToItsPreviousIncarnation() async throws {
        let h = NodeHarness<KVMachine>()  // in-memory logs, kept across restarts
        let answers = Mutex<[Message]>([])
        h.transport.setDropFilter { m in
            if case .readIndexResponse = m.kind { answers.withLock { $0.append(m) } }
            return false
        }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=old")
        let f = h.ids.first { $0 != leader }!
        let first = h.nodes[f]!
        #expect(try await h.answer { try await first.read { $0.values["k"] ?? "" } } == "old")
        let old = try #require(answers.withLock { a in a.first { $0.to == f } })

        // The follower is cut off and the others overwrite the key: the write completes.
        h.transport.isolate(f, true, from: h.ids)
        #expect(try await h.propose("k=new", at: leader) == "old")
        // The follower restarts (still cut off) and is asked for a linearizable read.
        await h.stop(f)
        try h.start(f)
        let restarted = h.nodes[f]!
        let answered = Flag()
        let read = Task {
            defer { answered.set() }
            return try await restarted.read { $0.values["k"] ?? "" }
        }
        // The old incarnation's answer arrives again (no tick passes, so the read cannot time
        // out meanwhile).
        for _ in 0..<50 where !answered.isSet {
            restarted.receive(old)
            await h.settle()
        }
        h.transport.isolate(f, false, from: h.ids)
        let value = try await h.answer { try await read.value }
        #expect(value == "new", "a linearizable read called after k=new completed returned \(value)")
        #expect(h.failures.isEmpty)
        await h.stopAll()
    }

    /// `ticksAreLate` looks only at how old the last handled tick is. After a pause (SIGSTOP, a
    /// VM migration) the tick loop catches up on the missed ticks one by one (its deadlines are
    /// fixed), so once the first catch-up tick is handled the check passes while the core's
    /// lease count is still behind by the whole pause. A lease read handled then (clients'
    /// requests queued during the pause arrive together with the ticks) is answered on a lease
    /// that ran out long ago, while the others elected a new leader and overwrote the value.
    ///
    /// The test gives the leader a clock whose time jumps by the length of the pause and
    /// delivers one tick: the state of the paused leader's loop after its first catch-up tick.
    /// Expected: the lease read does not return the overwritten value (it falls back to a
    /// round, which the cut-off leader cannot complete, and times out).
    @Test func leaseReadAfterAPauseIsNotServedFromTheOldLease() async throws {
        let c = SplitClockCluster { $0.raft.readLease = ReadLease(maxClockDrift: 0.1) }
        try c.startAll()
        let leader = try await c.electLeader(ticking: c.ids)
        _ = try await c.answer(ticking: c.ids) { try await c.nodes[leader]!.propose(Array("k=old".utf8)) }
        await c.tick(c.ids, 2)
        let nodeL = c.nodes[leader]!
        #expect(try await c.answer(ticking: c.ids) { try await nodeL.read(.lease) { $0.values["k"] ?? "" } } == "old")

        // The leader pauses: it neither ticks nor hears anything; the others go on.
        let others = c.ids.filter { $0 != leader }
        c.transport.isolate(leader, true, from: c.ids)
        var ticksPaused = 0
        var newLeader: NodeID?
        while newLeader == nil && ticksPaused < 100 {
            await c.tick(others)
            ticksPaused += 1
            for id in others where try await c.nodes[id]!.status().raft.role == .leader { newLeader = id }
        }
        let l2 = try #require(newLeader)
        let before = ticksPaused
        _ = try await c.answer(ticking: others, counting: &ticksPaused) { try await c.nodes[l2]!.propose(Array("k=new".utf8)) }
        #expect(ticksPaused >= before)

        // The leader resumes: its clock moved by the pause, and its first catch-up tick is
        // handled (the rest are still to come).
        c.clocks[leader]!.jump(by: .milliseconds(100) * ticksPaused)
        await c.tick([leader])
        let answered = Flag()
        let read = Task {
            defer { answered.set() }
            return try await nodeL.read(.lease) { $0.values["k"] ?? "" }
        }
        for _ in 0..<20 where !answered.isSet { await c.settle() }
        // Let the rest of the catch-up ticks come, so a correct read times out.
        var result: String
        do {
            result = try await c.answer(ticking: [leader]) { try await read.value }
        } catch let e as RaftError {
            result = "error \(e.code)"
        }
        #expect(result != "old", "a lease read on a leader back from a \(ticksPaused)-tick pause returned the overwritten value")
        await c.stopAll()
    }
}
