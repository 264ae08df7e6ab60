import Foundation
import Logging
import Raft
import RaftTestKit
import ServiceLifecycle
import Synchronization
import Testing

/// Starting and stopping a node: what it opens, what it reports, what it releases.
@Suite("RaftNode lifecycle")
struct RaftNodeLifecycleTests {
    /// An on-disk state machine may call POSIX `open` from its own methods: no state machine
    /// requirement shadows it (``FileCounter`` would not compile otherwise).
    @Test func stateMachineMayCallPosixOpen() throws {
        let dir = TempDirectory()
        let counter = FileCounter(path: dir.path + "/counter")
        #expect(try counter.openState() == .zero)
        _ = try counter.apply((1...3).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [UInt8($0)]) }[...])
        try counter.syncState()
        let reopened = FileCounter(path: dir.path + "/counter")
        #expect(try reopened.openState() == 3)
        #expect(reopened.total == 6)
    }

    /// A start that fails (the state machine cannot open, or it is ahead of the log) releases
    /// what it took: the storage is closed, so a new `FileLogStorage` on the same directory opens
    /// (its LOCK is free) and a node runs on it.
    @Test(arguments: ["state machine fails to open", "state machine ahead of the log"])
    func failedStartReleasesTheStorage(_ failure: String) async throws {
        let dir = TempDirectory()
        let counterPath = dir.path + "/counter"
        if failure == "state machine fails to open" {
            _ = FileManager.default.createFile(atPath: counterPath, contents: Data([1, 2, 3]))  // 3 bytes, not 16
        } else {
            let ahead = FileCounter(path: counterPath)
            ahead.appliedIndex = 50
            try ahead.syncState()
        }
        let failing = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path + "/raft", voters: [1]),
            stateMachine: FileCounter(path: counterPath), transport: LocalTransport(), clock: ManualClock())
        let error = await #expect(throws: RaftError.self) { try await failing.run() }
        #expect(error?.code == .stateMachine)

        try FileManager.default.removeItem(atPath: counterPath)
        let clock = ManualClock()
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path + "/raft", voters: [1]),
            stateMachine: FileCounter(path: counterPath), transport: LocalTransport(), clock: clock)
        let run = Task { try await node.run() }
        #expect(try await electSingleNode(node, clock: clock))
        #expect(try await node.propose([7]) == "7")
        node.stop()
        try await run.value
    }

    /// Whatever makes a node fail before it runs (a configuration it refuses, a state machine
    /// that cannot open, one ahead of the log), the storage it was handed is closed: the caller
    /// handed it over and cannot close it itself.
    @Test(arguments: ["invalid configuration", "state machine fails to open", "state machine ahead of the log"])
    func failedStartClosesTheStorage(_ failure: String) async throws {
        let closed = Flag()
        let storage = ClosingStorage(MemoryLogStorage(voters: [1]), closed: closed)
        let disk = KVDisk()
        var c = RaftNodeConfiguration(id: 1)
        switch failure {
        case "invalid configuration": c.tickInterval = .zero
        case "state machine fails to open": disk.failOpen = true
        default: disk.applied = 50
        }
        do {
            let node = try RaftNode(configuration: c, storage: storage, stateMachine: DiskKV(disk: disk), transport: LocalTransport(), clock: ManualClock())
            await #expect(throws: RaftError.self) { try await node.run() }
        } catch {
            #expect(failure == "invalid configuration", "\(error)")
        }
        #expect(closed.isSet, "the storage was closed after: \(failure)")
    }

    /// A log whose last record was torn (the process died mid-write), next to a file recovery
    /// does not know: opening it cuts the tail and reports both.
    func damagedLog(_ dir: String) throws -> (segment: String, offset: Int) {
        let first = try FileLogStorage(directory: dir, voters: [1, 2, 3])
        try first.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [UInt8($0)]) })
        try first.sync()
        first.close()
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir + "/wal").filter { $0.hasSuffix(".wal") }.sorted()
        let segment = dir + "/wal/" + segments.last!
        let clean = try #require(FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int)
        let second = try FileLogStorage(directory: dir, voters: [1, 2, 3])
        try second.append([LogEntry(term: 1, index: 6, data: Array(repeating: 6, count: 64))])
        try second.sync()
        second.close()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
        #expect(bytes.count > clean)
        try bytes.prefix(clean + (bytes.count - clean) / 2).write(to: URL(fileURLWithPath: segment))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: dir + "/wal/notes.txt"))
        return (segment, clean)
    }

    /// When the node starts it logs what opening the storage found, at info, with the file and
    /// offset of the torn tail it cut off.
    @Test func nodeLogsTheStorageRecoveryAtStart() async throws {
        let dir = TempDirectory()
        let (segment, offset) = try damagedLog(dir.path)
        let logs = CapturedLogs()
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path, voters: [1, 2, 3]),
            stateMachine: KVMachine(), transport: LocalTransport(), clock: ManualClock(), logger: logs.logger)
        let run = Task { try await node.run() }
        _ = try await node.status()
        node.stop()
        try await run.value
        let line = logs.lines.first { $0.contains(segment) }
        #expect(line?.hasPrefix("info ") == true, "\(logs.lines)")
        #expect(line?.contains("offset \(offset)") == true, "\(logs.lines)")
        #expect(line?.contains("notes.txt") == true, "\(logs.lines)")
    }

    /// The status carries the storage's whole recovery report; nil for a storage without one.
    @Test func statusReportsTheStorageRecovery() async throws {
        let dir = TempDirectory()
        let (segment, offset) = try damagedLog(dir.path)
        let storage = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        let expected = storage.recovery
        #expect(expected.truncatedTail?.file == segment && expected.truncatedTail?.offset == offset)
        #expect(expected.unknownFiles == ["notes.txt"])
        #expect(try await status(of: storage).storageRecovery == expected)
        #expect(try await status(of: MemoryLogStorage(voters: [1, 2, 3])).storageRecovery == nil)
    }

    /// A stop syncs the state machine: an on-disk state machine that syncs lazily restarts
    /// where it stopped and is not fed again what it had applied. Through ``RaftNode/stop()``
    /// and through a service group's graceful shutdown.
    @Test(arguments: ["stop", "graceful shutdown"])
    func stopSyncsTheStateMachine(_ how: String) async throws {
        let dir = TempDirectory()
        let record = ApplyRecord()
        for round in 0..<2 {
            let clock = ManualClock()
            let node = try RaftNode(
                configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path + "/raft", voters: [1]),
                stateMachine: FileCounter(path: dir.path + "/counter", record: record), transport: LocalTransport(), clock: clock)
            let group = ServiceGroup(services: [node], logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let run = Task { how == "stop" ? try await node.run() : try await group.run() }
            #expect(try await electSingleNode(node, clock: clock))
            for _ in 0..<5 { _ = try await node.propose([1]) }
            // A no-op of the new term, then the five.
            #expect(try await node.status().applied == LogIndex(rawValue: UInt64(6 * (round + 1))))
            if how == "stop" { node.stop() } else { await group.triggerGracefulShutdown() }
            try await run.value
        }
        #expect(record.reapplied.isEmpty, "applied again after the restart: \(record.reapplied)")
        let reopened = FileCounter(path: dir.path + "/counter")
        #expect(try reopened.openState() == 12)
        #expect(reopened.total == 10)
    }

    /// A state machine that fails to sync on stop makes the stop fail: run() throws the error
    /// (naming the node and the sync) and logs it; it is not swallowed.
    @Test func syncFailureOnStopIsReported() async throws {
        let dir = TempDirectory()
        let failSync = Flag()
        let logs = CapturedLogs()
        let clock = ManualClock()
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path + "/raft", voters: [1]),
            stateMachine: FileCounter(path: dir.path + "/counter", failSync: failSync), transport: LocalTransport(), clock: clock,
            logger: logs.logger)
        let run = Task { try await node.run() }
        #expect(try await electSingleNode(node, clock: clock))
        _ = try await node.propose([1])
        failSync.set()
        node.stop()
        let error = await #expect(throws: RaftError.self) { try await run.value }
        #expect(error?.code == .stateMachine)
        #expect(error?.message.hasPrefix("node 1: ") == true && error?.message.contains("sync") == true, "\(String(describing: error))")
        #expect(logs.lines.contains { $0.hasPrefix("info ") && $0.contains("injected sync failure") }, "\(logs.lines)")
    }

    /// The status of a node started on `storage`, then stopped.
    func status(of storage: sending any WritableLogStorage) async throws -> NodeStatus {
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: storage, stateMachine: KVMachine(), transport: LocalTransport(), clock: ManualClock())
        let run = Task { try await node.run() }
        let status = try await node.status()
        node.stop()
        try await run.value
        return status
    }
}

/// Ticks a single-voter node's clock until it leads (at most 200 ticks).
func electSingleNode<SM: StateMachine>(_ node: RaftNode<SM>, clock: ManualClock) async throws -> Bool {
    for _ in 0..<200 {
        if try await node.status().raft.role == .leader { return true }
        clock.advance(by: .milliseconds(100))
        for _ in 0..<20 { await Task.yield() }
    }
    return false
}

/// A `MemoryLogStorage` that says when it is closed.
final class ClosingStorage: ForwardingStorage {
    let closed: Flag

    init(_ base: MemoryLogStorage, closed: Flag) {
        self.closed = closed
        super.init(base)
    }

    override func close() {
        closed.set()
        base.close()
    }
}

/// Collects what a logger logs, one line per message: level, message, then the metadata.
final class CapturedLogs: Sendable {
    struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append("\(event.level) \(event.message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        }
    }

    private let captured = Mutex<[String]>([])
    var lines: [String] { captured.withLock { $0 } }
    func append(_ line: String) { captured.withLock { $0.append(line) } }
    var logger: Logger { Logger(label: "test", factory: { _ in Handler(sink: self) }) }
}
