import Foundation
import Raft
import Testing

@testable import KVStore

/// A one-node cluster over a `LocalTransport` with the SQLite state machine, restarted on its
/// files: what the runtime does with a database ahead of, at, or behind the log's snapshot.
@Suite struct SQLiteRestartTests {
    struct Run {
        let node: RaftNode<SQLiteStateMachine>
        let task: Task<Void, any Error>
        let statistics: KVStatistics

        init(directory: String) throws {
            var c = RaftNodeConfiguration(id: 1)
            c.tickInterval = .milliseconds(10)
            c.snapshotEvery = 0
            c.compactionTrail = 0
            let storage = try FileLogStorage(directory: directory + "/raft", voters: [1])
            statistics = KVStatistics()
            let sm = try SQLiteStateMachine(path: directory + "/kv.sqlite", statistics: statistics)
            let transport = LocalTransport()
            let node = try RaftNode(configuration: c, storage: storage, stateMachine: sm, transport: transport)
            transport.register(1) { node.receive($0) }
            self.node = node
            task = Task { try await node.run() }
        }

        func leading() async throws {
            try await eventually(.seconds(10), "node 1 leading") { (try? await node.status().raft.role) == .leader }
        }

        func put(_ range: ClosedRange<Int>) async throws {
            for i in range {
                #expect(try await node.propose(KVCommand.put(key: "key\(i)".bytes, value: "value\(i)".bytes).encoded) == .stored)
            }
        }

        func stop() async throws {
            node.stop()
            try await task.value
        }
    }

    enum Database { case ahead, atTheSnapshot, behind }

    @Test(arguments: [Database.ahead, .atTheSnapshot, .behind])
    func restartUsesTheDatabaseUnlessItIsBehindTheSnapshot(_ database: Database) async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let first = try Run(directory: dir.path)
        try await first.leading()
        try await first.put(1...10)
        let snapshot = try #require(try await first.node.snapshot())
        if database != .atTheSnapshot { try await first.put(11...15) }
        let applied = try await first.node.status().applied
        try await first.stop()
        if database == .behind {
            // As after restoring an old backup: the database holds nothing the log's snapshot
            // does not supersede.
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dir.path + "/kv.sqlite" + suffix) }
        }

        let second = try Run(directory: dir.path)
        defer { second.node.stop() }
        try await second.leading()
        let status = try await second.node.status()
        #expect(status.snapshotIndex == snapshot)
        #expect(status.applied >= applied)
        switch database {
        case .ahead, .atTheSnapshot: #expect(second.statistics.current.snapshotsRestored == 0, "the database holds the snapshot's index or more: adopted, not reloaded")
        case .behind: #expect(second.statistics.current.snapshotsRestored == 1)
        }
        let count = database == .atTheSnapshot ? 10 : 15
        for i in 1...count {
            let value = try await second.node.read { try $0.value(forKey: "key\(i)".bytes) }
            #expect(value == "value\(i)".bytes)
        }
        try await second.stop()
    }
}
