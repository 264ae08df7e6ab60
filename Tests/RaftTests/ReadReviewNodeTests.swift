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
        let l2 = try await c.tickUntilLeader(among: others, ticking: others, counting: &ticksPaused)
        _ = try await c.answer(ticking: others, counting: &ticksPaused) { try await c.nodes[l2]!.propose(Array("k=new".utf8)) }

        // The leader resumes: its clock moved by the pause, and its first catch-up tick is
        // handled (the rest are still to come).
        c.clocks[leader]!.jump(by: .milliseconds(100) * ticksPaused)
        await c.tick([leader])
        // The rest of the catch-up ticks come after it, so a correct read times out.
        let result = try await c.outcome(ticking: [leader]) { try await nodeL.read(.lease) { $0.values["k"] ?? "" } }
        #expect(result != "old", "a lease read on a leader back from a \(ticksPaused)-tick pause returned the overwritten value")
        await c.stopAll()
    }

    /// A follower's lease read is decided by the leader's core, and the leader's shell never
    /// checks its own ticks for it: `ticksAreLate` is consulted only by the node that asks
    /// (here the follower, whose ticks are on time). A leader back from a pause handles the
    /// follower's request before its first catch-up tick, with a lease count that stopped at
    /// the pause, and answers it from that lease while the others elected a new leader and
    /// overwrote the value.
    ///
    /// Five nodes: node 2 has an election timeout of 200 ticks (which only lengthens its
    /// promise, so the lease stays sound), so it keeps following the leader `l`; while `l` is
    /// paused and cut off, and 2 is cut off from the other three, those three elect a new
    /// leader and overwrite the key. Expected: 2's lease read does not return the old value.
    @Test func followerLeaseReadIsNotAnsweredByAPausedLeader() async throws {
        let c = SplitClockCluster(ids: [1, 2, 3, 4, 5]) { cfg in
            cfg.raft.readLease = ReadLease(maxClockDrift: 0.1)
            if cfg.raft.id == 2 { cfg.raft.electionTicks = 200 }
            cfg.readTimeoutTicks = 20
        }
        try c.startAll()
        let l = try await c.electLeader(ticking: c.ids)
        try #require(l != 2)
        _ = try await c.answer(ticking: c.ids) { try await c.nodes[l]!.propose(Array("k=old".utf8)) }
        await c.tick(c.ids, 2)
        let follower = c.nodes[2]!
        #expect(try await c.answer(ticking: c.ids) { try await follower.read(.lease) { $0.values["k"] ?? "" } } == "old")

        // `l` pauses (no ticks, nothing heard); 2 is cut off from the other three, which go on.
        let rest = c.ids.filter { $0 != l && $0 != 2 }
        c.transport.isolate(l, true, from: c.ids)
        for id in rest { c.transport.setLink(2, id, connected: false) }
        let running = [2] + rest
        var ticksPaused = 0
        let l2 = try await c.tickUntilLeader(among: rest, ticking: running, counting: &ticksPaused)
        _ = try await c.answer(ticking: running, counting: &ticksPaused) { try await c.nodes[l2]!.propose(Array("k=new".utf8)) }
        let view = try await follower.status().raft
        try #require(view.role == .follower && view.leader == l, "node 2 must still follow node \(l): \(view)")

        // `l` resumes: its clock moved by the pause, no catch-up tick handled yet; 2 reaches it.
        c.clocks[l]!.jump(by: .milliseconds(100) * ticksPaused)
        c.transport.setLink(l, 2, connected: true)
        let result = try await c.outcome(ticking: c.ids) { try await follower.read(.lease) { $0.values["k"] ?? "" } }
        #expect(result != "old", "a follower's lease read answered by a leader back from a \(ticksPaused)-tick pause returned the overwritten value")
        await c.stopAll()
    }
}
