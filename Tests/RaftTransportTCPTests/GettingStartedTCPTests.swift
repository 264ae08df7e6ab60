import Logging
import Raft
import RaftTransportTCP
import ServiceLifecycle
import Synchronization
import Testing

// The TCP part of the DocC article "Getting started" (Sources/Raft/Docs.docc/GettingStarted.md),
// kept here so that it compiles and runs: RaftTests' `articleSnippetsAreCompiledHere` checks
// that every line of its Swift blocks appears in this file. Change both together.

/// What the article's node runs: the store its first part builds. Here a smaller stand-in with
/// the same name (the first part's store lives in RaftTests): the last command is the state.
final class KeyValueStore: StateMachine {
    var last = ""
    let view = Mutex("")

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        entries.filter { $0.kind == .command }.map { entry in
            last = String(decoding: entry.data, as: UTF8.self)
            view.withLock { $0 = last }
            return last
        }
    }

    func prepareSnapshot() throws -> String { last }

    static func saveSnapshot(_ context: String, to output: SnapshotOutput) throws {
        try output.write(lengthPrefixed: context)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        last = try input.readLengthPrefixedString(maxLength: 1 << 20)
    }
}

enum GettingStartedTCP {
    // --- Article: one node over TCP.
    /// Node `id` of the cluster whose members listen at `addresses`, its log in `directory`.
    static func makeNode(
        id: NodeID, addresses: [NodeID: PeerAddress], directory: String, logger: Logger
    ) throws -> (TCPTransport, RaftNode<KeyValueStore>) {
        let transport = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "getting-started", nodeID: id, listenAddress: addresses[id]!,
                peers: addresses.filter { $0.key != id }),
            logger: logger)
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: id),
            storage: FileLogStorage(directory: directory, voters: addresses.keys.sorted()),
            stateMachine: KeyValueStore(), transport: transport, logger: logger)
        transport.setReceiver { message in node.receive(message) }
        return (transport, node)
    }

    // --- Article: each process's main (compiled here, not run: it waits for a signal).
    static func main(id: NodeID, addresses: [NodeID: PeerAddress]) async throws {
        let logger = Logger(label: "getting-started")
        let (transport, node) = try makeNode(id: id, addresses: addresses, directory: "/var/lib/kv", logger: logger)
        let group = ServiceGroup(
            services: [transport, node], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

@Suite("Getting started article, over TCP")
struct GettingStartedTCPTests {
    /// Three nodes made by the article's `makeNode` on loopback (ports the system picks, told to
    /// the others before they run) elect a leader and commit a write on every node; each
    /// node's ServiceGroup then shuts down gracefully.
    @Test(.timeLimit(.minutes(1)))
    func threeNodesOverTCP() async throws {
        let logger = Logger(label: "getting-started", factory: { _ in SwiftLogNoOpLogHandler() })
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let ids: [NodeID] = [1, 2, 3]
        let placeholders = Dictionary(uniqueKeysWithValues: ids.map { ($0, PeerAddress(host: loopback, port: 0)) })
        var made: [NodeID: (TCPTransport, RaftNode<KeyValueStore>)] = [:]
        for id in ids {
            made[id] = try GettingStartedTCP.makeNode(
                id: id, addresses: placeholders, directory: "\(directory.path)/node\(id)", logger: logger)
        }
        var ports: [NodeID: PeerAddress] = [:]
        for (id, (transport, _)) in made { ports[id] = PeerAddress(host: loopback, port: try await transport.listen()) }
        for (id, (transport, _)) in made { transport.setPeers(ports.filter { $0.key != id }) }
        let nodes = made

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            var groups: [ServiceGroup] = []
            for (transport, node) in nodes.values {
                let group = ServiceGroup(services: [transport, node], gracefulShutdownSignals: [], logger: logger)
                groups.append(group)
                tasks.addTask { try await group.run() }
            }
            do {
                try await within(.seconds(30), "a write committed on all three nodes over TCP") {
                    while true {
                        for (_, node) in nodes.values {
                            if let result = try? await node.propose(Array("color=blue".utf8)) {
                                #expect(result == "color=blue")
                                return
                            }
                        }
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
                try await eventually(.seconds(10), "every node applied the write") {
                    var applied = 0
                    for (_, node) in nodes.values where try await node.status().applied >= 2 { applied += 1 }
                    return applied == 3
                }
            } catch {
                for group in groups { await group.triggerGracefulShutdown() }
                throw error
            }
            for group in groups { await group.triggerGracefulShutdown() }
        }
    }
}
