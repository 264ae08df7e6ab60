// Three Raft nodes in one process, with real file storage under a temporary directory and real
// time, narrated in plain words: election, proposals, the leader stopping, a new leader taking
// over, the old one coming back and catching up.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Raft
import Synchronization

/// What the demo shows of a node's store. The node owns the store itself (it was handed over
/// as `sending`), so the store publishes a copy here after every change.
final class StoreView: Sendable {
    private let published = Mutex<[String: String]>([:])
    var values: [String: String] { published.withLock { $0 } }
    func publish(_ values: [String: String]) { published.withLock { $0 = values } }
}

/// A tiny key-value store: commands are `key=value`, the result is the previous value.
final class Store: StateMachine {
    var values: [String: String] = [:]
    let view: StoreView

    init(view: StoreView) { self.view = view }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        defer { view.publish(values) }
        return entries.filter { $0.kind == .command }.map { e in
            let parts = String(decoding: e.data, as: UTF8.self).split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { return "" }
            defer { values[parts[0]] = parts[1] }
            return values[parts[0]] ?? "(none)"
        }
    }

    /// A copy of the dictionary is the point-in-time view: copy-on-write makes it free until
    /// the next apply changes the store.
    func prepareSnapshot() throws -> [String: String] { values }

    /// Runs on the snapshot thread beside `apply`, with the copy only.
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws {
        for (key, value) in context.sorted(by: { $0.key < $1.key }) {
            try output.write("\(key)=\(value)\n".utf8)
        }
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        values = [:]
        for line in String(decoding: try input.readAll(), as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        view.publish(values)
    }
}

func say(_ s: String) { print(s) }

let ids: [NodeID] = [1, 2, 3]
var template = "/tmp/raft-demo-XXXXXX".utf8CString
guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
    say("error: cannot create a temporary directory")
    exit(1)
}
let root = String(cString: made)
let transport = LocalTransport()
var nodes: [NodeID: RaftNode<Store>] = [:]
var stores: [NodeID: StoreView] = [:]
var runs: [NodeID: Task<Void, any Error>] = [:]

@MainActor
func start(_ id: NodeID) throws {
    var c = RaftNodeConfiguration(id: id)
    c.tickInterval = .milliseconds(10)  // a fast demo: 10 ms heartbeat, 100–200 ms election timeout
    c.snapshotEvery = 50
    c.compactionTrail = 10
    let storage = try FileLogStorage(directory: "\(root)/node\(id)", voters: ids)
    let view = StoreView()
    let node = try RaftNode(configuration: c, storage: storage, stateMachine: Store(view: view), transport: transport)
    transport.register(id, receive: { node.receive($0) })
    nodes[id] = node
    stores[id] = view
    runs[id] = Task { try await node.run() }
}

@MainActor
func stop(_ id: NodeID) async {
    transport.unregister(id)
    nodes[id]?.stop()
    if case .failure(let e)? = await runs[id]?.result { say("  node \(id) stopped with an error: \(e)") }
    nodes[id] = nil
}

@MainActor
func leader(within seconds: Int = 10) async -> NodeID? {
    for _ in 0..<(seconds * 50) {
        for (id, node) in nodes {
            if let s = try? await node.status(), s.raft.role == .leader { return id }
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

@MainActor
func cleanUp() { _ = system("rm -rf '\(root)'") }

do {
    say("Starting three nodes (1, 2, 3), each with its own write-ahead log under \(root).")
    for id in ids { try start(id) }
    guard let first = await leader() else {
        say("No leader was elected: this should not happen.")
        cleanUp()
        exit(1)
    }
    say("Node \(first) won the election for term \(try await nodes[first]!.status().raft.term).")
    for command in ["color=red", "size=large", "color=blue"] {
        let previous = try await nodes[first]!.propose(Array(command.utf8))
        say("Client: '\(command)' committed on a majority and applied; previous value: \(previous)")
    }

    say("Stopping the leader, node \(first).")
    await stop(first)
    guard let second = await leader() else {
        say("The two remaining nodes did not elect a leader: this should not happen.")
        cleanUp()
        exit(1)
    }
    say("Node \(second) took over as leader for term \(try await nodes[second]!.status().raft.term).")
    let previous = try await nodes[second]!.propose(Array("shape=round".utf8))
    say("Client: 'shape=round' committed with two of three nodes up; previous value: \(previous)")
    for k in 0..<100 { _ = try await nodes[second]!.propose(Array("counter=\(k)".utf8)) }
    let target = try await nodes[second]!.status()
    say("Client: 100 more writes; the leader has applied up to index \(target.applied) and snapshotted at \(target.snapshotIndex).")

    say("Restarting node \(first) from its files. It comes back as a follower and catches up.")
    try start(first)
    for _ in 0..<500 {
        if let s = try? await nodes[first]!.status(), s.applied >= target.applied { break }
        try? await Task.sleep(for: .milliseconds(20))
    }
    for id in ids {
        let s = try await nodes[id]!.status()
        say("  node \(id): \(s.raft.role), term \(s.raft.term), applied up to index \(s.applied), \(stores[id]!.values.count) keys")
    }
    let same = Set(ids.map { stores[$0]!.values }).count == 1
    say(same ? "All three nodes hold the same data: \(stores[second]!.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))" : "The nodes differ: this should not happen.")
    for id in ids { await stop(id) }
    cleanUp()
    exit(same ? 0 : 1)
} catch {
    say("error: \(error)")
    cleanUp()
    exit(1)
}
