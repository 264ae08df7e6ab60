import Raft
import RaftTestKit
import Synchronization

/// A clock whose time can run ahead of the ticks its sleepers get: `now` is a manual clock's
/// time plus a jump; sleeps wait on the manual clock. It puts a node in the state of a process
/// back from a pause whose tick loop has not caught up on the missed ticks yet.
final class SplitClock: Clock, Sendable {
    typealias Instant = ManualClock.Instant
    typealias Duration = Swift.Duration

    /// What the node's sleepers wait on: advance it to deliver ticks.
    let ticks = ManualClock()
    private let extra = Mutex<Duration>(.zero)

    var now: Instant { ticks.now.advanced(by: extra.withLock { $0 }) }
    var minimumResolution: Duration { .zero }

    /// Moves `now` forward without waking any sleeper.
    func jump(by d: Duration) { extra.withLock { $0 += d } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try await ticks.sleep(until: deadline, tolerance: tolerance)
    }
}

/// ``KVMachine`` nodes (three by default) on ``MemoryLogStorage`` over a ``LocalTransport``, each
/// on its own ``SplitClock``, so a test can tick some nodes and not others.
final class SplitClockCluster: @unchecked Sendable {
    // `@unchecked Sendable`: used from one test task only; the nodes' tasks never touch it.
    let ids: [NodeID]
    let transport = LocalTransport()
    var clocks: [NodeID: SplitClock] = [:]
    var nodes: [NodeID: RaftNode<KVMachine>] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]
    let configure: (inout RaftNodeConfiguration) -> Void

    /// `configure` sees each node's configuration with its id set.
    init(ids: [NodeID] = [1, 2, 3], configure: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }) {
        self.ids = ids
        self.configure = configure
    }

    func startAll() throws {
        for id in ids {
            var c = RaftNodeConfiguration(id: id)
            c.raft.randomSeed = 7
            configure(&c)
            let clock = SplitClock()
            let node = try RaftNode(
                configuration: c, storage: MemoryLogStorage(voters: ids), stateMachine: KVMachine(), transport: transport,
                clock: clock)
            clocks[id] = clock
            nodes[id] = node
            transport.register(id, receive: { node.receive($0) })
            runs[id] = Task { try await node.run() }
        }
    }

    func stopAll() async {
        for id in ids {
            transport.unregister(id)
            nodes[id]?.stop()
            _ = await runs[id]?.result
        }
        nodes = [:]
        runs = [:]
    }

    /// Lets every node handle what is queued, a few rounds.
    func settle() async {
        for _ in 0..<4 {
            for id in ids { _ = try? await nodes[id]?.status() }
        }
    }

    /// Delivers `n` ticks to the nodes `which`, one at a time, waiting each time until their
    /// tick loops sleep again and the cluster settled.
    func tick(_ which: [NodeID], _ n: Int = 1) async {
        for _ in 0..<n {
            for id in which { clocks[id]!.ticks.advance(by: .milliseconds(100)) }
            for id in which {
                var spins = 0
                while clocks[id]!.ticks.sleeperCount < 1 && spins < 10_000 {
                    await Task.yield()
                    spins += 1
                }
            }
            await settle()
        }
    }

    func electLeader(ticking which: [NodeID]) async throws -> NodeID {
        for _ in 0..<60 {
            for id in which where try await nodes[id]!.status().raft.role == .leader { return id }
            await tick(which)
        }
        throw RaftError(.timeout, "no leader after 60 ticks")
    }

    /// Ticks `which` until one of `candidates` leads (at most 150 ticks), adding the ticks to
    /// `ticked`.
    func tickUntilLeader(among candidates: [NodeID], ticking which: [NodeID], counting ticked: inout Int) async throws -> NodeID {
        for _ in 0..<150 {
            await tick(which)
            ticked += 1
            for id in candidates where try await nodes[id]!.status().raft.role == .leader { return id }
        }
        throw RaftError(.timeout, "none of \(candidates) leads after 150 ticks")
    }

    /// Starts `read`, lets the nodes handle it without a tick, then ticks `which` until it
    /// answers: its value, or `error <code>` when it fails with a ``RaftError``.
    func outcome(ticking which: [NodeID], of read: @escaping @Sendable () async throws -> String) async throws -> String {
        let answered = Flag()
        let t = Task {
            defer { answered.set() }
            return try await read()
        }
        for _ in 0..<20 where !answered.isSet { await settle() }
        do {
            return try await answer(ticking: which) { try await t.value }
        } catch let e as RaftError {
            return "error \(e.code)"
        }
    }

    /// Runs `operation` and ticks `which` until it answers (at most 200 ticks, then cancels it).
    func answer<R: Sendable>(ticking which: [NodeID], _ operation: @escaping @Sendable () async throws -> R) async throws -> R {
        try await answerWhileTicking(settle: settle, tick: { await self.tick(which) }, operation)
    }

    /// ``answer(ticking:_:)``, adding the ticks it delivered to `ticked`.
    func answer<R: Sendable>(
        ticking which: [NodeID], counting ticked: inout Int, _ operation: @escaping @Sendable () async throws -> R
    ) async throws -> R {
        let count = Mutex(0)
        defer { ticked += count.withLock { $0 } }
        return try await answerWhileTicking(
            settle: settle,
            tick: {
                await self.tick(which)
                count.withLock { $0 += 1 }
            }, operation)
    }
}

/// Runs `operation` and, until it answers, lets the cluster settle and delivers a tick; after
/// 200 ticks without an answer it cancels the operation (so a test never waits forever).
func answerWhileTicking<R: Sendable>(
    settle: () async -> Void, tick: () async -> Void, _ operation: @escaping @Sendable () async throws -> R
) async throws -> R {
    let answered = Flag()
    let t = Task {
        defer { answered.set() }
        return try await operation()
    }
    for _ in 0..<200 where !answered.isSet {
        await settle()
        if answered.isSet { break }
        await tick()
    }
    if !answered.isSet { t.cancel() }
    return try await t.value
}
