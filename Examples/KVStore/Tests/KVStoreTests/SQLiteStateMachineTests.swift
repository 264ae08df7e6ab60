import Foundation
import Raft
import RaftTestKit
import Testing

@testable import KVStore

/// Random puts, deletes and compare-and-swaps over a few keys, so that CAS both matches and
/// misses and deletes find keys and nothing.
@Sendable func randomCommand(_ random: inout SeededGenerator) -> [UInt8] {
    let key = "key\(random.next() % 8)".bytes
    let value = "value\(random.next() % 4)".bytes
    switch random.next() % 4 {
    case 0: return KVCommand.delete(key: key).encoded
    case 1: return KVCommand.compareAndSwap(key: key, expected: "value\(random.next() % 4)".bytes, new: value).encoded
    default: return KVCommand.put(key: key, value: value).encoded
    }
}

@Suite struct SQLiteStateMachineTests {
    @Test func keepsTheOnDiskStateMachineContract() async throws {
        let report = await StateMachineChecks.run(
            make: { environment in try SQLiteStateMachine(path: environment.directory + "/kv.sqlite") },
            commands: randomCommand)
        print(report)
        try report.requirePassed()
    }

    @Test func commandsRoundTripAndBadBytesAreRejected() throws {
        let commands: [KVCommand] = [
            .put(key: "a".bytes, value: []), .delete(key: "a/b".bytes),
            .compareAndSwap(key: [0xFF, 0], expected: "x".bytes, new: Array(repeating: 7, count: 300)),
        ]
        for c in commands { #expect(try KVCommand(decoding: c.encoded) == c) }
        for bad: [UInt8] in [[], [9], [1, 0, 0], [1, 0, 0, 0, 5, 1], KVCommand.delete(key: "k".bytes).encoded + [0]] {
            #expect(throws: RaftError.self) { try KVCommand(decoding: bad) }
        }
    }

    @Test func appliesPutDeleteAndCompareAndSwapInOneTransactionPerBatch() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let sm = try SQLiteStateMachine(path: dir.path + "/kv.sqlite")
        #expect(try sm.openState() == 0)
        let commands: [KVCommand] = [
            .put(key: "a".bytes, value: "1".bytes),
            .compareAndSwap(key: "a".bytes, expected: "2".bytes, new: "3".bytes),
            .compareAndSwap(key: "a".bytes, expected: "1".bytes, new: "3".bytes),
            .delete(key: "b".bytes),
            .compareAndSwap(key: "b".bytes, expected: [], new: "x".bytes),
        ]
        var entries = [LogEntry(term: 1, index: 1, kind: .noop)]
        entries += commands.enumerated().map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0.offset + 2)), data: $0.element.encoded) }
        entries.append(LogEntry(term: 1, index: 7, data: [42]))
        let results = try sm.apply(entries[...])
        #expect(results == [
            .stored, .mismatch(current: "1".bytes), .swapped, .deleted(existed: false), .mismatch(current: nil),
            .rejected(reason: "unknown KV command tag 42"),
        ])
        #expect(sm.appliedIndex == 7)
        #expect(try sm.value(forKey: "a".bytes) == "3".bytes)
        #expect(sm.statistics.current.appliedBatches == 1)
        try sm.syncState()
        // A second instance on the same file sees the batch and its index.
        let reopened = try SQLiteStateMachine(path: dir.path + "/kv.sqlite")
        #expect(try reopened.openState() == 7)
        #expect(try reopened.value(forKey: "a".bytes) == "3".bytes)
    }

    @Test func listsByPrefixInPages() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let sm = try SQLiteStateMachine(path: dir.path + "/kv.sqlite")
        let keys = ["a", "b/1", "b/2", "b/3", "b0", "c", "b\u{FF}"]
        let entries = keys.enumerated().map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0.offset + 1)), data: KVCommand.put(key: $0.element.bytes, value: "v".bytes).encoded) }
        _ = try sm.apply(entries[...])
        let first = try sm.list(prefix: "b/".bytes, after: nil, limit: 2)
        #expect(first.entries.map(\.key) == ["b/1".bytes, "b/2".bytes])
        #expect(first.hasMore)
        let second = try sm.list(prefix: "b/".bytes, after: "b/2".bytes, limit: 2)
        #expect(second.entries.map(\.key) == ["b/3".bytes])
        #expect(!second.hasMore)
        #expect(try sm.list(prefix: "b".bytes, after: nil, limit: 10).entries.count == 5)
        #expect(try sm.list(prefix: [], after: "b0".bytes, limit: 10).entries.map(\.key) == ["b\u{FF}".bytes, "c".bytes])
        #expect(try sm.list(prefix: [0xFF], after: nil, limit: 10).entries.isEmpty)
    }

    @Test func aFileThatIsNotADatabaseIsATypedErrorOnOpen() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/kv.sqlite"
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
        #expect { try SQLiteStateMachine(path: path) } throws: { ($0 as? RaftError)?.code == .corruption }
    }

    @Test func aDatabaseWithDamagedPagesIsATypedErrorOnOpen() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/kv.sqlite"
        do {
            let sm = try SQLiteStateMachine(path: path)
            let entries = (1...200).map { LogEntry(term: 1, index: LogIndex(rawValue: UInt64($0)), data: KVCommand.put(key: "key\($0)".bytes, value: Array(repeating: 1, count: 100)).encoded) }
            _ = try sm.apply(entries[...])
            try sm.syncState()
        }
        // Checkpoint the WAL into the main file, then overwrite every page after the first
        // (the header stays valid, the tables do not).
        let checkpoint = try SQLiteStateMachine(path: path)
        try checkpoint.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        try checkpoint.pool.close()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data(repeating: 0xA5, count: 16 * 4096))
        try handle.close()
        #expect { try SQLiteStateMachine(path: path) } throws: { ($0 as? RaftError)?.code == .corruption }
    }

    @Test func aSQLiteDatabaseOfAnotherApplicationIsRefused() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/other.sqlite"
        let other = try SQLiteStateMachine(path: path)
        try other.pool.write { db in try db.execute(sql: "PRAGMA user_version = 99") }
        try other.pool.close()
        #expect { try SQLiteStateMachine(path: path) } throws: { ($0 as? RaftError)?.code == .unsupportedFormat }
    }
}
