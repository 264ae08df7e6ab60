import Logging
import MetricsTestKit
import Raft
import RaftTestKit
import RaftTransportTCP
import Synchronization

/// A state machine that keeps every command in order; the result of a command is the command.
///
/// It may also carry `padding` bytes of filler (standing for a large state): every snapshot
/// holds the commands, then the filler, written and read back 64 KiB at a time and checked on
/// recovery, so a snapshot can be made as large as a test needs without the state machine
/// holding it in memory.
final class Journal: StateMachine {
    var commands: [String] = []
    let padding: Int
    let view: JournalView

    init(view: JournalView, padding: Int = 0) {
        self.view = view
        self.padding = padding
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        let new = entries.filter { $0.kind == .command }.map { String(decoding: $0.data, as: UTF8.self) }
        commands += new
        view.publish(commands)
        return new
    }

    func prepareSnapshot() throws -> ([String], padding: Int) { (commands, padding) }

    /// The snapshot: the commands' text length (`u64`, big endian), the text (commands joined by
    /// newlines), then the filler.
    static func saveSnapshot(_ context: ([String], padding: Int), to output: SnapshotOutput) throws {
        let text = Array(context.0.joined(separator: "\n").utf8)
        try output.write((0..<8).map { UInt8(truncatingIfNeeded: UInt64(text.count) >> (56 - 8 * $0)) })
        try output.write(text)
        try SnapshotFiller.write(context.padding, to: output)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        let length = try input.read(exactly: 8).reduce(0) { $0 << 8 | Int($1) }
        let text = String(decoding: try input.read(exactly: length), as: UTF8.self)
        let filler = try SnapshotFiller.readAndCheck(from: input)
        commands = text.isEmpty ? [] : text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        view.publish(commands)
        view.recovered(filler: filler)
    }
}

/// What a test sees of a ``Journal`` handed to a node.
final class JournalView: Sendable {
    private let state = Mutex<[String]>([])
    private let filler = Mutex<[Int]>([])
    var commands: [String] { state.withLock { $0 } }
    func publish(_ c: [String]) { state.withLock { $0 = c } }
    /// The filler bytes of each snapshot the journal recovered from, in order.
    var recoveredFiller: [Int] { filler.withLock { $0 } }
    func recovered(filler bytes: Int) { filler.withLock { $0.append(bytes) } }
}

/// Three `RaftNode`s, each with its own `TCPTransport` on 127.0.0.1 (ports chosen by the
/// system), file storage under a temporary directory, and real time (20 ms ticks).
///
/// `@unchecked Sendable`: a test drives its cluster from one task at a time; the tasks it
/// starts only run the node and the transport they were given.
final class TCPCluster: @unchecked Sendable {
    let ids: [NodeID] = [1, 2, 3]
    let directory: TemporaryDirectory
    let metrics = TestMetrics()
    var ports: [NodeID: Int] = [:]
    var transports: [NodeID: TCPTransport] = [:]
    var nodes: [NodeID: RaftNode<Journal>] = [:]
    var views: [NodeID: JournalView] = [:]
    var nodeRuns: [NodeID: Task<Void, any Error>] = [:]
    var transportRuns: [NodeID: Task<Void, any Error>] = [:]
    let tuneTransport: (inout TCPTransportConfiguration) -> Void
    let tuneNode: (inout RaftNodeConfiguration) -> Void
    /// Filler bytes each node's ``Journal`` carries (and writes into every snapshot).
    let journalPadding: Int

    init(
        journalPadding: Int = 0,
        tuneTransport: @escaping (inout TCPTransportConfiguration) -> Void = { _ in },
        tuneNode: @escaping (inout RaftNodeConfiguration) -> Void = { _ in }
    ) async throws {
        directory = try TemporaryDirectory()
        self.journalPadding = journalPadding
        self.tuneTransport = tuneTransport
        self.tuneNode = tuneNode
        // Bind every transport first (port 0), then tell each where the others are.
        for id in ids { ports[id] = try await startTransport(id, port: 0) }
        for id in ids { transports[id]!.setPeers(peers(of: id)) }
    }

    func peers(of id: NodeID) -> [NodeID: PeerAddress] {
        var p: [NodeID: PeerAddress] = [:]
        for other in ids where other != id { p[other] = PeerAddress(host: loopback, port: ports[other] ?? 0) }
        return p
    }

    /// Starts node `id`'s transport on `port` and returns the port it listens on.
    func startTransport(_ id: NodeID, port: Int) async throws -> Int {
        var c = TCPTransportConfiguration(clusterID: "tcp-test", nodeID: id, listenAddress: PeerAddress(host: loopback, port: port), peers: peers(of: id))
        c.reconnectBackoff = .milliseconds(20)
        c.maxReconnectBackoff = .milliseconds(200)
        tuneTransport(&c)
        let t = try TCPTransport(configuration: c, metricsFactory: metrics)
        let bound = try await t.listen()
        transports[id] = t
        transportRuns[id] = Task { try await t.run() }
        return bound
    }

    func startNode(_ id: NodeID) throws {
        var c = RaftNodeConfiguration(id: id)
        c.tickInterval = .milliseconds(20)
        c.proposalTimeoutTicks = 100
        tuneNode(&c)
        let storage = try FileLogStorage(directory: "\(directory.path)/node\(id)", voters: ids)
        let view = JournalView()
        let node = try RaftNode(configuration: c, storage: storage, stateMachine: Journal(view: view, padding: journalPadding), transport: transports[id]!)
        transports[id]!.setReceiver { node.receive($0) }
        nodes[id] = node
        views[id] = view
        nodeRuns[id] = Task { try await node.run() }
    }

    func startAll() throws { for id in ids { try startNode(id) } }

    /// Stops node `id` and its transport (the process of that node "dies" cleanly).
    func stop(_ id: NodeID) async throws {
        nodes[id]?.stop()
        if let run = nodeRuns[id] { _ = try await within(.seconds(10), "node \(id) stopping") { await run.result } }
        await transports[id]?.shutdown()
        if let run = transportRuns[id] { _ = try await within(.seconds(10), "transport \(id) stopping") { await run.result } }
        nodes[id] = nil
        nodeRuns[id] = nil
        transportRuns[id] = nil
        transports[id] = nil
    }

    /// Starts node `id` again on the port it had, with the log it left. The port may be taken
    /// meanwhile (the system hands freed ports out again, to other tests' connections too):
    /// then the node comes back on a new port and the others are told its address, as an
    /// operator would after moving it.
    func restart(_ id: NodeID) async throws {
        var bound: Int?
        for attempt in 0..<10 where bound == nil {
            do { bound = try await startTransport(id, port: ports[id]!) } catch {
                if attempt < 9 { try await Task.sleep(for: .milliseconds(100)) }
            }
        }
        if bound == nil {
            ports[id] = try await startTransport(id, port: 0)
            for other in ids where other != id { transports[other]?.setPeers(peers(of: other)) }
            transports[id]!.setPeers(peers(of: id))
        }
        try startNode(id)
    }

    func stopAll() async {
        for id in ids { try? await stop(id) }
        directory.remove()
    }

    func status(_ id: NodeID) async -> NodeStatus? { try? await nodes[id]?.status() }

    /// The one leader among the running nodes, waiting for it (bounded).
    func leader(within limit: Duration = .seconds(20)) async throws -> NodeID {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < deadline {
            var leaders: [NodeID] = []
            for id in ids {
                if let s = await status(id), s.raft.role == .leader { leaders.append(id) }
            }
            if leaders.count == 1 { return leaders[0] }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw RaftError(.timeout, "no single leader within \(limit)")
    }

    /// Proposes on the current leader, retrying on a leader change (bounded).
    @discardableResult
    func propose(_ command: String) async throws -> String {
        var last: (any Error)?
        for _ in 0..<20 {
            let l = try await leader()
            do { return try await nodes[l]!.propose(Array(command.utf8)) } catch let e as RaftError where e.code == .notLeader || e.code == .proposalDropped {
                last = e
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw last ?? RaftError(.timeout, "proposal \(command) failed")
    }

    /// Proposes `prefix0`, `prefix1`, … in turn, checking each result; returns the commands.
    func proposeMany(_ prefix: String, _ count: Int) async throws -> [String] {
        var done: [String] = []
        for i in 0..<count {
            let c = "\(prefix)\(i)"
            let result = try await propose(c)
            guard result == c else { throw RaftError(.stateMachine, "proposal \(c) answered \(result)") }
            done.append(c)
        }
        return done
    }

    /// Starts the cluster, stops one follower, and proposes `batches` × `perBatch` commands of
    /// about `prefix.count + 8` bytes until the leader's snapshot reaches `snapshotAt`, so the
    /// stopped follower can only catch up by a snapshot. Returns who leads, who lags, and the
    /// commands.
    func lagOneFollower(
        prefix: String, batches: Int, perBatch: Int, snapshotAt: LogIndex, within limit: Duration = .seconds(10)
    ) async throws -> (leader: NodeID, follower: NodeID, commands: [String]) {
        try startAll()
        let leader = try await leader()
        let follower = ids.first { $0 != leader }!
        try await stop(follower)
        var commands: [String] = []
        for batch in 0..<batches { commands += try await proposeMany("\(prefix)-\(batch)-", perBatch) }
        try await eventually(limit, "the leader compacting past the follower") {
            (await self.status(leader)?.snapshotIndex ?? .zero) >= snapshotAt
        }
        return (leader, follower, commands)
    }

    /// Waits until every running node applied exactly `commands`.
    func waitForAll(_ commands: [String], within limit: Duration = .seconds(20)) async throws {
        try await eventually(limit, "every running node applying \(commands.count) commands") {
            self.nodes.keys.allSatisfy { self.views[$0]?.commands == commands }
        }
    }

    func counter(_ label: String, node: NodeID, peer: NodeID, lane: String = "messages") -> Int64 {
        (try? metrics.expectCounter(label, [("node", node.description), ("peer", peer.description), ("lane", lane)]).totalValue) ?? 0
    }
}
