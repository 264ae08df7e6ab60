import Foundation
import GRDB
import Raft
import Synchronization

/// The key-value store's state: an ``Raft/OnDiskStateMachine`` kept in one SQLite database
/// (through GRDB), so a restart does not replay what the database holds.
///
/// How it keeps the on-disk contract:
/// - **One transaction per applied batch.** ``apply(_:)`` writes every command of the batch and
///   the batch's last index into the `raft_state` row in one SQLite transaction, so the data and
///   the applied index can never be seen out of step, whatever kills the process in between.
/// - **Honest durability.** The database is in WAL mode with `synchronous = NORMAL`: a commit is
///   atomic (a crash rolls back to the last whole transaction) but not yet durable, which the
///   contract allows, because the Raft log keeps every entry the state machine has not made
///   durable. ``syncState()`` makes it durable: it commits one more transaction with
///   `synchronous = FULL`, which fsyncs the WAL file, and with it every transaction before.
///   (Syncing on every batch would double the fsyncs the log already pays for.)
/// - **Snapshots beside apply.** ``prepareSnapshot()`` opens a read transaction (a GRDB
///   `DatabaseSnapshot` on a connection of its own), cheap and consistent; WAL mode lets
///   ``saveSnapshot(_:to:)`` stream it row by row on the node's snapshot thread while
///   ``apply(_:)`` goes on writing.
/// - **Recovery from a stream.** ``recoverSnapshot(from:metadata:)`` replaces every row and the
///   applied index in one transaction, reading the snapshot record by record.
///
/// Why GRDB rather than sqlite-nio: the state machine's calls are synchronous and run on the
/// node's own threads, which may block; GRDB's synchronous `write`/`read` and its
/// `DatabaseSnapshot` fit that directly, where sqlite-nio's futures would have to be waited on
/// from a blocking thread. GRDB links the system's libsqlite3 (`libsqlite3-dev` on Debian).
///
/// Values read through ``value(forKey:)`` and ``list(prefix:after:limit:)`` are the committed
/// state; call them from a ``Raft/RaftNode/read(_:_:)`` query to get them at a consistency level.
public final class SQLiteStateMachine: OnDiskStateMachine {
    public typealias Result = KVResult
    public typealias SnapshotContext = SQLiteSnapshotContext

    /// The database file.
    public let path: String
    /// Counters other threads may read (the HTTP layer's metrics, tests).
    public let statistics: KVStatistics
    let pool: DatabasePool
    public internal(set) var appliedIndex: LogIndex

    /// Opens (or creates) the database at `path`.
    ///
    /// - Throws: ``Raft/RaftError/Code/corruption`` for a file that is not an SQLite database or
    ///   whose pages are damaged, ``Raft/RaftError/Code/unsupportedFormat`` for an SQLite
    ///   database this store did not write (or a newer schema), ``Raft/RaftError/Code/io``
    ///   when the file cannot be opened.
    public init(path: String, statistics: KVStatistics = KVStatistics()) throws(RaftError) {
        self.path = path
        self.statistics = statistics
        var configuration = Configuration()
        configuration.label = "kvstore"
        configuration.prepareDatabase { db in
            // See the type's documentation: atomic commits, made durable by syncState().
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw SQLiteErrors.mapped(error, "opening the KV database \(path)")
        }
        appliedIndex = 0
        appliedIndex = try SQLiteErrors.run("opening the KV database \(path)") { try pool.write(SQLiteSchema.prepare) }
    }

    // MARK: OnDiskStateMachine

    public func openState() throws -> LogIndex {
        appliedIndex = try SQLiteErrors.run("reading the applied index of \(path)") {
            try pool.read(SQLiteSchema.appliedIndex)
        }
        return appliedIndex
    }

    public func syncState() throws {
        try SQLiteErrors.run("syncing \(path)") {
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // A commit that writes a page: with synchronous = FULL its commit fsyncs the
                // WAL, and with it every transaction committed before (an empty transaction
                // would write nothing and sync nothing).
                let committed = Swift.Result {
                    try db.inTransaction {
                        try db.execute(sql: "UPDATE raft_state SET syncs = syncs + 1 WHERE id = 1")
                        return .commit
                    }
                }
                // Back to NORMAL whatever happened, then report the commit's failure first.
                let restored = Swift.Result { try db.execute(sql: "PRAGMA synchronous = NORMAL") }
                try committed.get()
                try restored.get()
            }
        }
        statistics.record(\.syncs)
    }

    public func apply(_ entries: ArraySlice<LogEntry>) throws -> [KVResult] {
        guard let first = entries.first, let last = entries.last else { return [] }
        let results = try SQLiteErrors.run("applying entries \(first.index)...\(last.index)") {
            try pool.write { db -> [KVResult] in
                var results: [KVResult] = []
                for entry in entries where entry.kind == .command {
                    results.append(try Self.apply(entry.data, in: db))
                }
                try SQLiteSchema.setAppliedIndex(last.index, in: db)
                return results
            }
        }
        appliedIndex = last.index
        statistics.record(\.appliedBatches)
        return results
    }

    /// Applies one command's bytes inside the batch's transaction.
    static func apply(_ data: [UInt8], in db: Database) throws -> KVResult {
        let command: KVCommand
        do { command = try KVCommand(decoding: data) } catch { return .rejected(reason: error.message) }
        switch command {
        case .put(let key, let value):
            try db.execute(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", arguments: [Data(key), Data(value)])
            return .stored
        case .delete(let key):
            try db.execute(sql: "DELETE FROM kv WHERE key = ?", arguments: [Data(key)])
            return .deleted(existed: db.changesCount > 0)
        case .compareAndSwap(let key, let expected, let new):
            let current = try Data.fetchOne(db, sql: "SELECT value FROM kv WHERE key = ?", arguments: [Data(key)]).map { [UInt8]($0) }
            guard current == expected else { return .mismatch(current: current) }
            try db.execute(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", arguments: [Data(key), Data(new)])
            return .swapped
        }
    }

    // MARK: Reads

    /// The committed value of `key`, or `nil`.
    public func value(forKey key: [UInt8]) throws(RaftError) -> [UInt8]? {
        try SQLiteErrors.run("reading a key from \(path)") {
            try pool.read { db in try Data.fetchOne(db, sql: "SELECT value FROM kv WHERE key = ?", arguments: [Data(key)]) }
        }.map { [UInt8]($0) }
    }

    /// Up to `limit` entries whose key starts with `prefix` and sorts after `after` (exclusive;
    /// `nil` from the first), in key order, and whether more follow.
    public func list(prefix: [UInt8], after: [UInt8]?, limit: Int) throws(RaftError) -> KVPage {
        let range = SQLiteSchema.KeyRange(prefix: prefix, after: after)
        let rows = try SQLiteErrors.run("listing keys of \(path)") {
            try pool.read { db -> [(Data, Data)] in
                var sql = "SELECT key, value FROM kv WHERE key \(range.lowerInclusive ? ">=" : ">") ?"
                var arguments: StatementArguments = [Data(range.lower)]
                if let upper = range.upper {
                    sql += " AND key < ?"
                    arguments += [Data(upper)]
                }
                sql += " ORDER BY key LIMIT ?"
                arguments += [limit + 1]
                return try Row.fetchAll(db, sql: sql, arguments: arguments).map { ($0[0], $0[1]) }
            }
        }
        let entries = rows.prefix(limit).map { KVPage.Entry(key: [UInt8]($0.0), value: [UInt8]($0.1)) }
        return KVPage(entries: Array(entries), hasMore: rows.count > limit)
    }

    /// The number of keys.
    public func count() throws(RaftError) -> Int {
        try SQLiteErrors.run("counting keys of \(path)") { try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM kv") ?? 0 } }
    }
}

/// One page of a listing.
public struct KVPage: Sendable, Hashable {
    /// A key and its value.
    public struct Entry: Sendable, Hashable {
        /// The key.
        public var key: [UInt8]
        /// Its value.
        public var value: [UInt8]
    }
    /// The entries, in key order.
    public var entries: [Entry]
    /// Whether entries follow the last one (ask again with `after` set to its key).
    public var hasMore: Bool
}

/// Counters of a ``SQLiteStateMachine``, safe to read from any thread.
public final class KVStatistics: Sendable {
    /// The counted events.
    public struct Counts: Sendable, Hashable {
        /// Batches applied (one transaction each).
        public var appliedBatches = 0
        /// Syncs (``SQLiteStateMachine/syncState()``).
        public var syncs = 0
        /// Snapshots saved.
        public var snapshotsSaved = 0
        /// Snapshots restored into the database (replacing its rows).
        public var snapshotsRestored = 0
    }
    private let counts = Mutex(Counts())

    /// Creates zeroed counters.
    public init() {}

    /// The counts now.
    public var current: Counts { counts.withLock { $0 } }

    func record(_ field: WritableKeyPath<Counts, Int> & Sendable) {
        counts.withLock { $0[keyPath: field] += 1 }
    }
}
