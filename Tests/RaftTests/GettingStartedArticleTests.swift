import Raft
import Testing

// The code of the DocC article "Getting started" (Sources/Raft/Docs.docc/GettingStarted.md),
// kept here so that it compiles and runs. `articleSnippetsAreCompiledHere` checks that every
// Swift block of the article appears in this file line by line (indentation aside), so the
// two cannot drift apart: change both together.

enum GettingStartedArticle {
    // --- Article: the state machine.
    /// A key-value store: a command is `key=value`; its result is the key's previous value.
    final class KeyValueStore: StateMachine {
        var values: [String: String] = [:]

        func apply(_ entries: ArraySlice<LogEntry>) throws -> [String?] {
            // One result per command entry; a new leader's no-op and membership entries have none.
            entries.filter { $0.kind == .command }.map { entry in
                let text = String(decoding: entry.data, as: UTF8.self)
                guard let equals = text.firstIndex(of: "=") else { return nil }
                let key = String(text[..<equals])
                defer { values[key] = String(text[text.index(after: equals)...]) }
                return values[key]
            }
        }

        // Snapshots in two steps: a copy-on-write copy between two applies...
        func prepareSnapshot() throws -> [String: String] { values }

        // ...then saved from that copy on the snapshot thread, while apply goes on.
        static func saveSnapshot(_ values: [String: String], to output: SnapshotOutput) throws {
            try output.write(UInt64(values.count))
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                try output.write(lengthPrefixed: key)
                try output.write(lengthPrefixed: value)
            }
        }

        func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
            var restored: [String: String] = [:]
            let count = try input.readUInt64()
            for _ in 0..<count {
                let key = try input.readLengthPrefixedString(maxLength: 1 << 10)
                restored[key] = try input.readLengthPrefixedString(maxLength: 1 << 20)
            }
            values = restored
        }
    }

    // --- Article: three nodes in one process.
    static func startCluster() throws -> [NodeID: RaftNode<KeyValueStore>] {
        let transport = LocalTransport()
        var nodes: [NodeID: RaftNode<KeyValueStore>] = [:]
        for id: NodeID in [1, 2, 3] {
            var config = RaftNodeConfiguration(id: id)
            config.tickInterval = .milliseconds(10)  // elections within 100-200 ms
            let node = try RaftNode(
                configuration: config,
                storage: MemoryLogStorage(voters: [1, 2, 3]),
                stateMachine: KeyValueStore(), transport: transport)
            transport.register(id) { message in node.receive(message) }
            nodes[id] = node
        }
        return nodes
    }

    // --- Article: writing through whichever node leads.
    /// Proposes `command` on node 1, or on the leader a follower's refusal names.
    static func put(_ command: String, on nodes: [NodeID: RaftNode<KeyValueStore>]) async throws -> String? {
        var target: NodeID = 1
        for _ in 0..<500 {
            do {
                return try await nodes[target]!.propose(Array(command.utf8))
            } catch let error as RaftError where error.code == .notLeader || error.code == .proposalDropped {
                if let leader = error.leaderHint, nodes[leader] != nil {
                    target = leader
                } else {
                    try await Task.sleep(for: .milliseconds(10))  // an election is under way
                }
            }
        }
        throw RaftError(.timeout, "no leader took the proposal")
    }

    // --- Article: running, writing, reading, stopping.
    static func run() async throws -> (String?, String?, String?) {
        let nodes = try startCluster()
        let runs = nodes.values.map { node in Task { try await node.run() } }

        let first = try await put("color=red", on: nodes)     // nil: there was no value
        let second = try await put("color=blue", on: nodes)   // "red"
        // Linearizable on any node, followers included: sees both writes.
        let now = try await nodes[3]!.read { store in store.values["color"] }

        for node in nodes.values { node.stop() }
        for run in runs { try await run.value }
        return (first, second, now)
    }
}

@Suite("Getting started article")
struct GettingStartedArticleTests {
    /// The article's cluster elects a leader, commits two writes and reads the second back
    /// linearizably from node 3, then stops cleanly.
    @Test(.timeLimit(.minutes(1)))
    func threeNodesInOneProcess() async throws {
        let (first, second, now) = try await GettingStartedArticle.run()
        #expect(first == nil)
        #expect(second == "red")
        #expect(now == "blue")
    }

    /// The store's snapshot round-trips through the typed stream helpers.
    @Test func keyValueStoreSnapshotRoundTrip() throws {
        let store = GettingStartedArticle.KeyValueStore()
        let entries = ["a=1", "b=2", "a=3", "not a command"].enumerated().map { i, text in
            LogEntry(term: 1, index: LogIndex(rawValue: UInt64(i + 1)), data: Array(text.utf8))
        }
        #expect(try store.apply(entries[...]) == [nil, nil, "1", nil])
        let output = SnapshotOutput(inMemory: SnapshotMetadata(index: 4, term: 1, confState: ConfState(voters: [1])))
        try GettingStartedArticle.KeyValueStore.saveSnapshot(try store.prepareSnapshot(), to: output)
        let restored = GettingStartedArticle.KeyValueStore()
        try restored.recoverSnapshot(from: SnapshotInput(output.data), metadata: output.metadata)
        #expect(restored.values == ["a": "3", "b": "2"])
    }

    /// Every Swift block of the article is in this file, line by line.
    @Test func articleSnippetsAreCompiledHere() throws {
        let missing = try ArticleChecks.snippetLinesMissing(
            article: "Sources/Raft/Docs.docc/GettingStarted.md", from: "Tests/RaftTests/GettingStartedArticleTests.swift",
            before: "## Over TCP")
        #expect(missing.isEmpty, "lines of the article's Swift blocks not found in this file: \(missing)")
        // The TCP part is compiled and run by the TCP transport's tests.
        let tcpMissing = try ArticleChecks.snippetLinesMissing(
            article: "Sources/Raft/Docs.docc/GettingStarted.md", from: "Tests/RaftTransportTCPTests/GettingStartedTCPTests.swift",
            after: "## Over TCP")
        #expect(tcpMissing.isEmpty, "lines of the article's TCP blocks not found in GettingStartedTCPTests.swift: \(tcpMissing)")
    }
}
