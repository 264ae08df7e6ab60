import Foundation
import GRDB
import Raft

/// A point-in-time view of the database for a snapshot: an open read transaction on a
/// connection of its own (WAL mode keeps it unchanged while applies go on), and the index it
/// holds.
public struct SQLiteSnapshotContext: Sendable {
    /// The read transaction (GRDB's `DatabaseSnapshot` is `Sendable`: every access goes through
    /// its own serial queue).
    let snapshot: DatabaseSnapshot
    /// The applied index the read transaction sees.
    public let index: LogIndex
    /// Where the saved snapshot is counted.
    let statistics: KVStatistics
}

/// The snapshot format, a stream of:
///
/// | bytes | field |
/// | --- | --- |
/// | 4 | magic `KVS1` |
/// | 8 | the applied index the rows are the state at (big-endian) |
/// | per row: 1 | `1` |
/// | per row: 4 + n | key, length-prefixed |
/// | per row: 4 + n | value, length-prefixed |
/// | 1 | `0`: the end |
/// | 8 | the number of rows, as a check |
///
/// The runtime checksums the whole stream; the count and the end marker catch a stream that
/// ends early or a writer that went wrong.
enum SQLiteSnapshotFormat {
    static let magic: [UInt8] = Array("KVS1".utf8)
    static let rowMarker: UInt8 = 1
    static let endMarker: UInt8 = 0
    /// The largest key or value a snapshot may hold (guards a corrupt length before allocating).
    static let maxFieldBytes = 64 << 20
}

extension SQLiteStateMachine {
    public func prepareSnapshot() throws -> SQLiteSnapshotContext {
        let snapshot = try SQLiteErrors.run("opening a read transaction for a snapshot of \(path)") { try pool.makeSnapshot() }
        // The read transaction must see exactly this state machine's applied index: it is
        // taken between two applies, on the loop, after the last commit.
        let seen = try SQLiteErrors.run("reading the snapshot's applied index") { try snapshot.read(SQLiteSchema.appliedIndex) }
        guard seen == appliedIndex else {
            throw RaftError(.stateMachine, "a snapshot's read transaction sees applied index \(seen), the state machine applied \(appliedIndex)")
        }
        return SQLiteSnapshotContext(snapshot: snapshot, index: seen, statistics: statistics)
    }

    public static func saveSnapshot(_ context: SQLiteSnapshotContext, to output: SnapshotOutput) throws {
        try output.write(SQLiteSnapshotFormat.magic)
        try output.write(context.index.rawValue)
        let rows = try SQLiteErrors.run("streaming a snapshot at index \(context.index)") {
            try context.snapshot.read { db -> UInt64 in
                var rows: UInt64 = 0
                let cursor = try Row.fetchCursor(db, sql: "SELECT key, value FROM kv ORDER BY key")
                while let row = try cursor.next() {
                    let key: Data = row[0]
                    let value: Data = row[1]
                    try output.write(SQLiteSnapshotFormat.rowMarker)
                    try output.write(lengthPrefixed: key)
                    try output.write(lengthPrefixed: value)
                    rows += 1
                }
                return rows
            }
        }
        try output.write(SQLiteSnapshotFormat.endMarker)
        try output.write(rows)
        context.statistics.record(\.snapshotsSaved)
    }

    public func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        let doing = "restoring snapshot \(metadata.index) into \(path)"
        guard try input.read(exactly: SQLiteSnapshotFormat.magic.count) == SQLiteSnapshotFormat.magic else {
            throw RaftError(.corruption, "\(doing): the snapshot does not start with KVS1: not a KVStore snapshot")
        }
        let index = LogIndex(rawValue: try input.readUInt64())
        guard index == metadata.index else {
            throw RaftError(.corruption, "\(doing): the snapshot's data is the state at index \(index), its metadata says \(metadata.index)")
        }
        try SQLiteErrors.run(doing) {
            try pool.write { db in
                try db.execute(sql: "DELETE FROM kv")
                let insert = try db.makeStatement(sql: "INSERT INTO kv (key, value) VALUES (?, ?)")
                var rows: UInt64 = 0
                while true {
                    let marker = try input.readUInt8()
                    if marker == SQLiteSnapshotFormat.endMarker { break }
                    guard marker == SQLiteSnapshotFormat.rowMarker else {
                        throw RaftError(.corruption, "unexpected byte \(marker) where a row or the end was expected, after \(rows) rows")
                    }
                    let key = try input.readLengthPrefixedBytes(maxLength: SQLiteSnapshotFormat.maxFieldBytes)
                    let value = try input.readLengthPrefixedBytes(maxLength: SQLiteSnapshotFormat.maxFieldBytes)
                    try insert.execute(arguments: [Data(key), Data(value)])
                    rows += 1
                }
                let expected = try input.readUInt64()
                guard expected == rows else {
                    throw RaftError(.corruption, "the snapshot holds \(rows) rows, its trailer says \(expected)")
                }
                try SQLiteSchema.setAppliedIndex(metadata.index, in: db)
            }
        }
        appliedIndex = metadata.index
        statistics.record(\.snapshotsRestored)
    }
}
