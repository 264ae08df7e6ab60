#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Raft
import Synchronization

/// What a test sees of the entries a state machine applied, across restarts of its node: how
/// many times each index was applied. The state machine itself belongs to the node.
final class ApplyRecord: Sendable {
    private let counts = Mutex<[LogIndex: Int]>([:])

    func record(_ index: LogIndex) { counts.withLock { $0[index, default: 0] += 1 } }
    /// Indexes applied more than once, in order.
    var reapplied: [LogIndex] { counts.withLock { c in c.filter { $0.value > 1 }.keys.sorted() } }
    /// How many times each index was applied.
    var applications: [LogIndex: Int] { counts.withLock { $0 } }
}

/// An on-disk state machine kept in one file through POSIX calls: 16 bytes, the applied index
/// and the running total of the commands' first bytes (little-endian). `syncState()` replaces
/// the file atomically (temporary file, `fsync`, `rename`); `apply` does not sync, so the durable
/// index lags until the runtime asks for a sync (before a snapshot, on stop).
///
/// It calls POSIX `open` unqualified from inside its own methods: that compiles only while no
/// state machine requirement is named `open`.
final class FileCounter: OnDiskStateMachine {
    let path: String
    let record: ApplyRecord
    /// Set: `syncState()` throws, as a full disk would make it.
    let failSync: Flag
    var appliedIndex: LogIndex = .zero
    var total: UInt64 = 0

    init(path: String, record: ApplyRecord = ApplyRecord(), failSync: Flag = Flag()) {
        self.path = path
        self.record = record
        self.failSync = failSync
    }

    func openState() throws -> LogIndex {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            if errno == ENOENT { return .zero }
            throw RaftError(.io, "cannot open \(path): errno \(errno)")
        }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 16)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, 16) }
        guard n == 16 else { throw RaftError(.corruption, "\(path) holds \(n) bytes, not 16") }
        appliedIndex = LogIndex(rawValue: Self.load(bytes, at: 0))
        total = Self.load(bytes, at: 8)
        return appliedIndex
    }

    func syncState() throws {
        if failSync.isSet { throw RaftError(.io, "injected sync failure of \(path)") }
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw RaftError(.io, "cannot create \(temporary): errno \(errno)") }
        var bytes: [UInt8] = []
        for v in [appliedIndex.rawValue, total] { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, 16) }
        let synced = fsync(fd)
        close(fd)
        guard written == 16, synced == 0, rename(temporary, path) == 0 else { throw RaftError(.io, "cannot write \(path): errno \(errno)") }
    }

    /// One result per command: the total after it.
    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        var results: [String] = []
        for e in entries {
            record.record(e.index)
            appliedIndex = e.index
            guard e.kind == .command else { continue }
            total += UInt64(e.data.first ?? 0)
            results.append("\(total)")
        }
        return results
    }

    func prepareSnapshot() throws -> UInt64 { total }

    static func saveSnapshot(_ context: UInt64, to output: SnapshotOutput) throws { try output.write(context) }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        total = try input.readUInt64()
        appliedIndex = metadata.index
        try syncState()
    }

    static func load(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}
