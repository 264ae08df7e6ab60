import Foundation
import GRDB
import Raft

/// The database layout, in one place:
///
/// ```sql
/// CREATE TABLE kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
/// CREATE TABLE raft_state (id INTEGER PRIMARY KEY CHECK (id = 1),
///                          applied_index INTEGER NOT NULL, syncs INTEGER NOT NULL);
/// PRAGMA user_version = 1;
/// ```
///
/// `raft_state` holds one row: the index of the last entry applied (written in the same
/// transaction as the rows it describes) and a count of syncs (the row ``SQLiteStateMachine/syncState()``
/// writes to force an fsync; no state depends on it).
enum SQLiteSchema {
    static let version = 1

    /// Creates the tables in a new database, checks an existing one; returns its applied index.
    static func prepare(_ db: Database) throws -> LogIndex {
        let found = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        switch found {
        case 0:
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
            guard tables.isEmpty else {
                throw RaftError(.unsupportedFormat, "\(db.configuration.label ?? "the database") holds tables (\(tables.joined(separator: ", "))) but no KVStore schema version: not a KVStore database")
            }
            try db.execute(sql: """
                CREATE TABLE kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE raft_state (id INTEGER PRIMARY KEY CHECK (id = 1), applied_index INTEGER NOT NULL, syncs INTEGER NOT NULL);
                INSERT INTO raft_state (id, applied_index, syncs) VALUES (1, 0, 0);
                PRAGMA user_version = \(version);
                """)
            return 0
        case version:
            return try appliedIndex(db)
        default:
            throw RaftError(.unsupportedFormat, "the KV database has schema version \(found); this build reads version \(version)")
        }
    }

    /// The applied index recorded in `db`.
    static func appliedIndex(_ db: Database) throws -> LogIndex {
        guard let raw = try Int64.fetchOne(db, sql: "SELECT applied_index FROM raft_state WHERE id = 1"), raw >= 0 else {
            throw RaftError(.corruption, "the KV database has no applied index (its raft_state row is missing or negative)")
        }
        return LogIndex(rawValue: UInt64(raw))
    }

    static func setAppliedIndex(_ index: LogIndex, in db: Database) throws {
        guard let raw = Int64(exactly: index.rawValue) else {
            throw RaftError(.stateMachine, "applied index \(index) does not fit SQLite's 64-bit signed integers")
        }
        try db.execute(sql: "UPDATE raft_state SET applied_index = ? WHERE id = 1", arguments: [raw])
    }

    /// The keys a listing covers: those starting with `prefix`, after `after` when given.
    struct KeyRange {
        var lower: [UInt8]
        var lowerInclusive: Bool
        /// The first key past every key with the prefix; `nil` when there is none (an empty
        /// prefix, or one of only 0xFF bytes).
        var upper: [UInt8]?

        init(prefix: [UInt8], after: [UInt8]?) {
            if let after, after.lexicographicallyPrecedes(prefix) == false {
                lower = after
                lowerInclusive = false
            } else {
                lower = prefix
                lowerInclusive = true
            }
            var end = prefix
            while let last = end.last, last == 0xFF { end.removeLast() }
            if end.isEmpty {
                upper = nil
            } else {
                end[end.count - 1] += 1
                upper = end
            }
        }
    }
}

/// Turns GRDB's and SQLite's errors into typed ``Raft/RaftError``s that say what was being done.
enum SQLiteErrors {
    static func run<T>(_ doing: @autoclosure () -> String, _ body: () throws -> T) throws(RaftError) -> T {
        do { return try body() } catch { throw mapped(error, doing()) }
    }

    static func mapped(_ error: any Error, _ doing: String) -> RaftError {
        if let e = error as? RaftError {
            var e = e
            e.message = "\(doing): \(e.message)"
            return e
        }
        guard let db = error as? DatabaseError else { return RaftError(.stateMachine, "\(doing): \(error)") }
        switch db.resultCode.primaryResultCode {
        case .SQLITE_NOTADB, .SQLITE_CORRUPT:
            return RaftError(.corruption, "\(doing): the file is not a valid SQLite database (\(db.message ?? "\(db.resultCode)")); remove it with its -wal and -shm files and the node rebuilds it from its Raft log and latest snapshot")
        case .SQLITE_FULL:
            return RaftError(.noSpace, "\(doing): \(db.message ?? "\(db.resultCode)")")
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM:
            return RaftError(.io, "\(doing): \(db.message ?? "\(db.resultCode)")")
        default:
            return RaftError(.stateMachine, "\(doing): \(db.message ?? "\(db.resultCode)")")
        }
    }
}
