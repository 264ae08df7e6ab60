@_spi(Testing) import Raft
import Synchronization
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The three-node cluster of the runtime check: real ``RaftNode``s running the user's state
/// machine (observed), each with a ``FileLogStorage`` and a state directory of its own, over a
/// ``LocalTransport``, ticking on a ``ManualClock``. Driven from the check's task only; the
/// nodes' run tasks touch only `ended`, which locks.
final class CheckCluster<SM: StateMachine> {
    typealias Node = RaftNode<ObservedStateMachine<SM>>

    let ids: [NodeID] = [1, 2, 3]
    let clock = ManualClock()
    let transport = LocalTransport()
    let record = RuntimeRecord<SM.Result>()
    let crashes = CrashSwitch()
    let make: StateMachineChecks<SM>.Factory
    let root: String
    let seed: UInt64
    let snapshotEvery: UInt64
    var nodes: [NodeID: Node] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]
    /// Nodes whose state directory an instance has used.
    var used: Set<NodeID> = []
    /// How each node's run ended, when it did: `nil` for an orderly stop.
    let ended = Locked<[NodeID: String?]>([:])
    static var crashMarker: String { "injected crash at" }

    init(root: String, seed: UInt64, snapshotEvery: UInt64, make: @escaping StateMachineChecks<SM>.Factory) {
        self.root = root
        self.seed = seed
        self.snapshotEvery = snapshotEvery
        self.make = make
    }

    func configuration(_ id: NodeID) -> RaftNodeConfiguration {
        var c = RaftNodeConfiguration(id: id)
        c.raft.randomSeed = seed &+ id.rawValue
        c.snapshotEvery = snapshotEvery
        c.compactionTrail = 2
        c.snapshotChunkBytes = 64
        let crashes = crashes
        c.crashHook = { node, point in crashes.fire(point, on: node) }
        return c
    }

    /// Opens a node's log. Under a parallel test run a restart has once found the directory's
    /// LOCK still held just after the previous node's run ended (its storage is closed before
    /// `run()` returns; the cause is not known): a lock held that way is retried for up to two
    /// seconds, any other error is thrown at once.
    static func openStorage(_ directory: String, voters: [NodeID]) throws -> FileLogStorage {
        var attempts = 0
        while true {
            do { return try FileLogStorage(directory: directory, voters: voters) } catch {
                attempts += 1
                guard error.code == .invalidConfiguration, error.message.contains("LOCK"), attempts < 40 else { throw error }
                usleep(50_000)
            }
        }
    }

    func start(_ id: NodeID) throws {
        guard nodes[id] == nil else { return }
        let environment = StateMachineEnvironment(directory: "\(root)/node-\(id)/state", isFresh: !used.contains(id), node: id)
        try PosixFileSystem().createDirectory(environment.directory)
        used.insert(id)
        // The machine first: a factory that throws must not leave the storage open (its LOCK
        // held), or the next start of this node would fail.
        let machine = ObservedStateMachine(try make(environment), node: id, record: record)
        let storage = try Self.openStorage("\(root)/node-\(id)/raft", voters: ids)
        let node = try RaftNode(configuration: configuration(id), storage: storage, stateMachine: machine, transport: transport, clock: clock)
        nodes[id] = node
        transport.register(id, receive: { node.receive($0) })
        ended.withLock { _ = $0.removeValue(forKey: id) }
        runs[id] = Task { [ended] in
            do {
                try await node.run()
                ended.withLock { $0[id] = .some(nil) }
            } catch {
                ended.withLock { $0[id] = .some("\(error)") }
            }
        }
    }

    /// Stops `id` the orderly way (the state machine is synced) and waits for its loop to end.
    /// Returns the error its run ended with, if it was not an orderly stop.
    @discardableResult
    func stop(_ id: NodeID) async -> String? {
        transport.unregister(id)
        nodes[id]?.stop()
        _ = await runs[id]?.result
        nodes[id] = nil
        runs[id] = nil
        return ended.withLock { $0[id] ?? nil }
    }

    /// Stops `id` as if its process died: the log is as durable as the node made it (every
    /// batch is synced before it is acknowledged), the state machine is not synced, so an
    /// on-disk one keeps only what it made durable by itself.
    func crash(_ id: NodeID) async -> String? {
        record.setCrashing(id, true)
        defer { record.setCrashing(id, false) }
        return await stop(id)
    }

    func stopAll() async { for id in ids { await stop(id) } }

    /// Nodes whose run ended by itself, with the error.
    var failed: [(NodeID, String)] {
        ended.withLock { e in ids.compactMap { id in e[id].flatMap { $0 }.map { (id, $0) } } }.filter { nodes[$0.0] != nil }
    }

    /// Restarts every node stopped by an injected crash; returns the errors of nodes that
    /// stopped for any other reason (they stay down).
    func restartCrashed() async throws -> [String] {
        var other: [String] = []
        for (id, error) in failed {
            if error.contains(Self.crashMarker) {
                await stop(id)
                try start(id)
            } else {
                other.append(error)
            }
        }
        return other
    }

    func settle() async {
        for _ in 0..<4 { for id in ids { _ = try? await nodes[id]?.status() } }
    }

    /// One tick: time moves, then every running node handles what follows from it.
    func tick(_ n: Int = 1) async {
        for _ in 0..<n {
            clock.advance(by: .milliseconds(100))
            let alive = nodes.count - failed.count
            var spins = 0
            while clock.sleeperCount < alive && spins < 10_000 {
                await Task.yield()
                spins += 1
            }
            await settle()
        }
    }

    func status(_ id: NodeID) async -> NodeStatus? { try? await nodes[id]?.status() }

    func leader() async -> NodeID? {
        var found: [NodeID] = []
        for id in ids where await status(id)?.raft.role == .leader { found.append(id) }
        return found.count == 1 ? found[0] : nil
    }

    /// Proposes `command` on the leader (ticking until there is one) and ticks until the answer
    /// comes; `nil` when it failed (no leader, a leader change, a crash, a timeout).
    func propose(_ command: [UInt8]) async -> SM.Result? {
        var found: NodeID?
        for _ in 0..<60 {
            found = await leader()
            if found != nil { break }
            await tick()
        }
        guard let found, let node = nodes[found] else { return nil }
        let box = AnswerBox<SM.Result>()
        let proposal = Task {
            do { box.set(.success(try await node.propose(command))) } catch { box.set(.failure(error)) }
        }
        for _ in 0..<200 where !box.isSet {
            await settle()
            if box.isSet { break }
            await tick()
        }
        if !box.isSet { proposal.cancel() }
        await proposal.value
        return try? box.get()
    }
}

/// The answer to one proposal, set by the proposing task, read by the check.
final class AnswerBox<Value: Sendable>: Sendable {
    private let answer = Mutex<Swift.Result<Value, any Error>?>(nil)

    var isSet: Bool { answer.withLock { $0 != nil } }
    func set(_ result: Swift.Result<Value, any Error>) { answer.withLock { $0 = result } }
    /// The value, or the error; ``RaftError/Code/timeout`` when nothing answered.
    func get() throws -> Value {
        guard let result = answer.withLock({ $0 }) else { throw RaftError(.timeout, "the proposal was not answered") }
        return try result.get()
    }
}

/// Which crash point the runtime check arms: the first node that reaches it stops there, once.
final class CrashSwitch: Sendable {
    private let state = Mutex<(armed: NodeCrashPoint?, fired: [(NodeCrashPoint, NodeID)])>((nil, []))

    func arm(_ point: NodeCrashPoint?) { state.withLock { $0.armed = point } }

    /// Whether `point` was reached (and the crash fired) since it was armed.
    func hasFired(_ point: NodeCrashPoint) -> Bool { state.withLock { s in s.fired.contains { $0.0 == point } } }

    /// Where each crash fired, in order.
    var fired: [(NodeCrashPoint, NodeID)] { state.withLock { $0.fired } }

    /// Asked by the node at each crash point: `true` stops it there.
    func fire(_ point: NodeCrashPoint, on node: NodeID) -> Bool {
        state.withLock { s in
            guard s.armed == point else { return false }
            s.armed = nil
            s.fired.append((point, node))
            return true
        }
    }
}

/// A value behind a lock, shared with other tasks.
final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func withLock<T>(_ body: (inout Value) -> T) -> T { value.withLock { body(&$0) } }
}
