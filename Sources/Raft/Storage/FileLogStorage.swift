/// Tuning for ``FileLogStorage``.
public struct FileLogStorageOptions: Sendable, Hashable {
    /// A new segment file starts once the current one holds this many bytes.
    public var segmentBytes: Int = 64 << 20
    /// Recent entries kept in memory, so followers a little behind are served without disk reads.
    public var cachedEntries: Int = 8192
    /// Snapshot files kept, the latest included; at least 1.
    ///
    /// Every kept snapshot is a fallback: ``FileLogStorage/compact(upTo:)`` never compacts
    /// past the oldest of them (that is still at or after the compaction point), so if the
    /// newest snapshot file is damaged, opening skips it (``StorageRecoveryReport/skippedSnapshots``),
    /// starts from the next older one and still holds the log from there on. The price is
    /// disk space: the log keeps every entry since the oldest kept snapshot, so with a snapshot
    /// every N entries it holds about `(keepSnapshots - 1) × N` entries more than with 1, which
    /// keeps only the latest snapshot and no fallback. A snapshot installed from the leader
    /// replaces the whole log: the snapshots before it are no fallback for it.
    public var keepSnapshots: Int = 3
    /// How far ahead of its last record a segment is filled with zeros. A sync of records
    /// written inside already-zeroed space only flushes data; a sync that grows the file must
    /// also commit the file system's journal, which costs a third more alone and much more
    /// when several logs share a disk. Never past ``segmentBytes``; at most 1 GiB. Zero turns
    /// it off (every sync grows the file).
    public var preallocateBytes: Int = 1 << 20

    /// Creates the default options.
    public init() {}
}

/// The durable log: a segmented write-ahead log plus snapshot files, in one directory.
///
/// - `<directory>/wal/<seq>.wal`: segments of CRC-32C-framed records (entries, hard states,
///   compaction and snapshot-install markers). Appends and hard-state updates are buffered and
///   made durable together by ``sync()``: one `fdatasync` for a whole batch (group commit).
/// - `<directory>/snap/<index>-<term>.snap`: snapshot files, see ``Snapshotter``.
///
/// Reads never scan files: an index in memory (32 bytes per entry) locates every entry, and the
/// newest entries are cached. Opening recovers from a crash at any point: a torn record at the tail of the last
/// segment is cut off (see ``recovery``); a bad checksum anywhere else, or a missing segment, is
/// a ``RaftError/Code/corruption`` error naming the file and offset, and nothing is dropped.
///
/// Contract: entries and hard states handed to ``append(_:)`` and ``setHardState(_:)`` are
/// durable once ``sync()`` returns, and ``durableLastIndex`` says up to where. After an I/O
/// error the storage refuses further writes (it cannot know what reached the disk); reopen it.
public final class FileLogStorage: WritableLogStorage {
    struct Segment {
        var seq: UInt64
        var path: String
        var file: any StorageFile
        /// Bytes of records written to the file (everything below is on disk, synced or not).
        var size: Int
        /// The file's length: records, then zeros written ahead of them.
        var filled: Int
        /// Highest entry index ever written to this segment.
        var maxIndex: LogIndex
    }

    /// The directory holding `wal/` and `snap/`.
    public let directory: String
    let walDirectory: String
    let options: FileLogStorageOptions
    let fs: any FileSystem
    /// The snapshot files.
    public let snapshotter: Snapshotter
    /// What opening found and repaired.
    public internal(set) var recovery = StorageRecoveryReport()

    var segments: [Segment] = []
    /// Entries up to `base.index` are compacted; `base.term` is the term at that index.
    var base: (index: LogIndex, term: Term) = (.zero, .zero)
    var conf: ConfState
    var hard = HardState()
    var locations = LocationTable()
    /// Cache of the newest entries: `cache[i].index == cacheStart + i`, ending at the last index.
    var cache: [LogEntry] = []
    var cacheStart: LogIndex = 1
    var pending: [UInt8] = []
    var latestSnapshot: SnapshotMetadata
    var failure: RaftError?
    /// Repairs found by recovery, carried out once every check passed.
    var pendingRepairs: [Repair] = []
    /// Bytes the torn-tail analysis of the last open checksummed (bounded by
    /// ``tornTailWorkBound(_:)`` per search; tests check it).
    var tornTailChecksummedBytes = 0
    /// Held locked while the storage is open.
    var lockFile: (any StorageFile)?
    /// The last index up to which the log, as this storage holds it now, is durable: those
    /// entries survive a crash. ``lastIndex()`` counts appends not yet synced; the two are
    /// equal after ``sync()`` and after opening (which syncs what it found, so that entries a
    /// crashed process wrote but never synced are not counted durable while they are not).
    /// After an append that replaces a suffix it is the index before the replacement until
    /// the next sync (the replaced entries are still on disk): after a crash the reopened
    /// ``lastIndex()`` is at least this, and at most the ``lastIndex()`` of before.
    public internal(set) var durableLastIndex: LogIndex = .zero

    /// Opens the storage in `directory`, creating it when new.
    ///
    /// - Parameters:
    ///   - directory: where the segments, the snapshots and the lock file live; created when
    ///     missing. One node's directory: a second process opening it is refused.
    ///   - voters: the initial voters of a new cluster. Ignored when the directory already holds
    ///     a log, except that a different non-empty set is refused: the directory belongs to
    ///     another cluster.
    ///   - options: segment size, cache, preallocation and snapshot retention; checked here (a
    ///     value out of range throws ``RaftError/Code/invalidConfiguration``).
    ///   - fileSystem: the file layer; the default is the real one (``PosixFileSystem``), tests
    ///     inject one that fails or loses power.
    public init(
        directory: String, voters: [NodeID] = [], options: FileLogStorageOptions = FileLogStorageOptions(),
        fileSystem: any FileSystem = PosixFileSystem()
    ) throws(RaftError) {
        if options.segmentBytes < 4096 { throw RaftError(.invalidConfiguration, "segmentBytes must be at least 4096, got \(options.segmentBytes)") }
        if options.cachedEntries < 0 { throw RaftError(.invalidConfiguration, "cachedEntries must not be negative") }
        if options.preallocateBytes < 0 || options.preallocateBytes > 1 << 30 {
            throw RaftError(.invalidConfiguration, "preallocateBytes must be between 0 and 1 GiB, got \(options.preallocateBytes)")
        }
        if options.keepSnapshots < 1 { throw RaftError(.invalidConfiguration, "keepSnapshots must be at least 1, got \(options.keepSnapshots)") }
        self.directory = directory
        walDirectory = joinPath(directory, "wal")
        self.options = options
        fs = fileSystem
        conf = ConfState(voters: voters)
        latestSnapshot = SnapshotMetadata(index: .zero, term: .zero, confState: ConfState(voters: voters))
        try fs.createDirectory(walDirectory)
        // One storage per directory: a second one (in this process or another) would write the
        // same files. The lock is released when the storage closes or the process dies.
        let lock = try fs.open(joinPath(directory, "LOCK"), create: true)
        guard lock.tryLock() else {
            lock.close()
            throw RaftError(.invalidConfiguration, "\(directory) is in use by another FileLogStorage (its LOCK file is locked); close that one first")
        }
        lockFile = lock
        snapshotter = try Snapshotter(
            directory: joinPath(directory, "snap"), keep: options.keepSnapshots, fileSystem: fileSystem, removeTemporaryFiles: false)
        do { try recover(voters: voters) } catch {
            lock.close()
            throw error
        }
    }

    func check() throws(RaftError) {
        if let failure {
            throw RaftError(failure.code == .noSpace ? .noSpace : .io, "the storage failed earlier and refuses writes until reopened: \(failure.message)")
        }
    }

    /// Runs a write; any error marks the storage failed.
    func guarded<T>(_ body: () throws(RaftError) -> T) throws(RaftError) -> T {
        try check()
        do {
            return try body()
        } catch {
            failure = error
            throw error
        }
    }

    // MARK: LogStorage

    public func initialState() throws(RaftError) -> (HardState, ConfState) { (hard, conf) }

    public var currentHardState: HardState { hard }

    public func firstIndex() -> LogIndex { base.index + 1 }

    /// The last entry appended, synced or not (see ``durableLastIndex``).
    public func lastIndex() -> LogIndex { base.index + UInt64(locations.count) }

    public func term(at index: LogIndex) throws(RaftError) -> Term {
        if index == base.index { return base.term }
        if index < base.index { throw RaftError(.compacted, "entry \(index) was compacted; first index is \(base.index + 1)") }
        let i = base.index.distance(to: index) - 1
        if i >= locations.count { throw RaftError(.unavailable, "entry \(index) is past the last index \(lastIndex())") }
        return locations[i].term
    }

    public func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        if range.lowerBound <= base.index {
            throw RaftError(.compacted, "entries from \(range.lowerBound) were compacted; first index is \(base.index + 1)")
        }
        if range.upperBound > lastIndex() + 1 {
            throw RaftError(.unavailable, "entries up to \(range.upperBound - 1) requested; last index is \(lastIndex())")
        }
        var out: [LogEntry] = []
        var size = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let e = try entry(at: i)
            size += e.byteSize
            if size > maxBytes && !out.isEmpty { break }
            out.append(e)
            i = i + 1
        }
        return out
    }

    func entry(at index: LogIndex) throws(RaftError) -> LogEntry {
        if index >= cacheStart, !cache.isEmpty {
            return cache[cacheStart.distance(to: index)]
        }
        let loc = locations[base.index.distance(to: index) - 1]
        guard let seg = segments.first(where: { $0.seq == loc.seq }) else {
            throw RaftError(.corruption, "entry \(index) points to segment \(loc.seq), which is not open")
        }
        if loc.offset + loc.length > seg.size {
            // Still in the write buffer.
            let start = loc.offset - seg.size
            return try decodeEntry(Array(pending[start..<(start + loc.length)]), seg: seg, offset: loc.offset, index: index)
        }
        let bytes = try seg.file.read(at: loc.offset, count: loc.length)
        return try decodeEntry(bytes, seg: seg, offset: loc.offset, index: index)
    }

    func decodeEntry(_ bytes: [UInt8], seg: Segment, offset: Int, index: LogIndex) throws(RaftError) -> LogEntry {
        var r = ByteReader(bytes)
        guard bytes.count >= WALFormat.frameSize, let len = r.u32(), let crc = r.u32(), Int(len) == bytes.count - WALFormat.frameSize,
            CRC32C.checksum(bytes, WALFormat.frameSize..<bytes.count) == crc,
            case .entry(let e)? = WALFormat.decode(bytes[WALFormat.frameSize...]), e.index == index
        else {
            throw RaftError(.corruption, "segment \(seg.path) at offset \(offset): entry \(index) failed its checksum on read")
        }
        return e
    }

    public func snapshot() throws(RaftError) -> Snapshot {
        if latestSnapshot.index == .zero { return Snapshot(metadata: SnapshotMetadata(index: .zero, term: .zero, confState: conf)) }
        let name = Snapshotter.fileName(latestSnapshot)
        let reader = try snapshotter.open(name)
        defer { reader.close() }
        return Snapshot(metadata: latestSnapshot, data: try reader.readAll())
    }

    /// The latest snapshot's data, streamed from its file after one pass that verifies the
    /// file's checksum.
    public func openSnapshot() throws(RaftError) -> SnapshotInput {
        try openSnapshot(verification: .beforeReading)
    }

    /// The latest snapshot's data, streamed from its file (its own descriptor: the stream may be
    /// read on another thread, and survives the file being pruned meanwhile), checked as
    /// `verification` says. Opening reads only the file's header, except with
    /// ``SnapshotVerification/beforeReading``.
    public func openSnapshot(verification: SnapshotVerification) throws(RaftError) -> SnapshotInput {
        if latestSnapshot.index == .zero { return SnapshotInput([]) }
        return SnapshotInput(reader: try snapshotter.open(Snapshotter.fileName(latestSnapshot), verification: verification))
    }

    /// The metadata of the latest snapshot.
    public func snapshotMetadata() -> SnapshotMetadata {
        latestSnapshot.index == .zero ? SnapshotMetadata(index: .zero, term: .zero, confState: conf) : latestSnapshot
    }

    // MARK: Writes

    var current: Segment {
        get { segments[segments.count - 1] }
        set { segments[segments.count - 1] = newValue }
    }

    /// Buffers entries for the next ``sync()``. An entry whose index is already held replaces it
    /// and every later entry (a conflicting suffix); entries at or below the compaction point
    /// are skipped; a gap after the last index is refused.
    public func append(_ newEntries: [LogEntry]) throws(RaftError) {
        try check()
        guard var first = newEntries.first?.index else { return }
        var slice = newEntries[...]
        if first <= base.index {
            let skip = first.distance(to: base.index + 1)
            if skip >= slice.count { return }
            slice = slice.dropFirst(skip)
            first = base.index + 1
        }
        if first > lastIndex() + 1 {
            throw RaftError(.storage, "append at \(first) would leave a gap after last index \(lastIndex())")
        }
        var expected = first
        for e in slice {
            if e.index != expected { throw RaftError(.storage, "entries to append are not consecutive at \(e.index)") }
            expected = expected + 1
        }
        if first <= lastIndex() {
            locations.removeSuffix(keeping: base.index.distance(to: first) - 1)
            if durableLastIndex >= first { durableLastIndex = first - 1 }
            if first < cacheStart {
                cache.removeAll()
                cacheStart = first
            } else if !cache.isEmpty {
                cache.removeSubrange(cacheStart.distance(to: first)...)
            }
        }
        if cache.isEmpty { cacheStart = first }
        let seq = current.seq
        var offset = current.size + pending.count
        for e in slice {
            WALFormat.encodeEntry(&pending, e)
            let end = current.size + pending.count
            locations.append(Location(seq: seq, offset: offset, length: end - offset, term: e.term))
            offset = end
        }
        if let last = slice.last?.index, last > current.maxIndex { current.maxIndex = last }
        if options.cachedEntries > 0 {
            cache.append(contentsOf: slice)
            if cache.count > options.cachedEntries {
                let drop = cache.count - options.cachedEntries
                cache.removeFirst(drop)
                cacheStart = cacheStart.advanced(by: drop)
            }
        }
    }

    /// Buffers a hard state for the next ``sync()``.
    public func setHardState(_ state: HardState) throws(RaftError) {
        try check()
        WALFormat.encodeHardState(&pending, state)
        hard = state
    }

    /// Writes the buffered records to the segment file without syncing them: they are not
    /// durable until ``sync()``. ``sync()`` does this itself; tests call it to leave unsynced
    /// data on the disk for a simulated power loss to tear.
    public func writeBuffered() throws(RaftError) {
        try guarded { () throws(RaftError) in
            if !pending.isEmpty {
                let end = current.size + pending.count
                try current.file.write(pending, at: current.size)
                // Zeros ahead of the records (never past the segment's size), made durable by
                // the same sync: the next syncs of records written over them do not grow the
                // file. Recovery reads zeros after the last record as the end of the log.
                let target = min(end + options.preallocateBytes, options.segmentBytes)
                if end > current.filled && target > end {
                    try current.file.write([UInt8](repeating: 0, count: target - end), at: end)
                    current.filled = target
                }
                current.size = end
                current.filled = max(current.filled, end)
                pending.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Writes everything buffered and makes it durable with one `fdatasync`; starts a new
    /// segment when the current one is full.
    public func sync() throws(RaftError) {
        try writeBuffered()
        try guarded { () throws(RaftError) in
            try current.file.sync()
            durableLastIndex = lastIndex()
            if current.size >= options.segmentBytes { try roll() }
        }
    }

    /// Starts a new segment whose header repeats the compaction point and the hard state, so
    /// older segments can be deleted without losing either.
    func roll() throws(RaftError) {
        // Only the last segment may end in zeros: cut the unused ones off this one first.
        if current.filled > current.size {
            try current.file.truncate(to: current.size)
            try current.file.sync()
            current.filled = current.size
        }
        let seq = current.seq + 1
        let path = joinPath(walDirectory, WALFormat.segmentName(seq))
        let file = try fs.open(path, create: true)
        try file.truncate(to: 0)
        var bytes = WALFormat.header(seq: seq)
        WALFormat.encodeBase(&bytes, index: base.index, term: base.term, reset: false, conf: conf)
        WALFormat.encodeHardState(&bytes, hard)
        try file.write(bytes, at: 0)
        file.reserve(options.segmentBytes + (1 << 20))
        try file.sync()
        try fs.syncDirectory(walDirectory)
        segments.append(Segment(seq: seq, path: path, file: file, size: bytes.count, filled: bytes.count, maxIndex: base.index))
    }

    /// Deletes segments none of whose entries are above `index` (never the current one).
    /// Oldest first, syncing the directory after each removal: whatever a crash leaves is a
    /// contiguous run of segments, never one with a hole.
    func deleteSegments(upTo index: LogIndex) throws(RaftError) {
        while segments.count > 1 && segments[0].maxIndex <= index {
            let s = segments.removeFirst()
            s.file.close()
            try fs.remove(s.path)
            try fs.syncDirectory(walDirectory)
        }
    }

    /// Records a snapshot of the state machine at `index` (held and applied) with `data`.
    /// The log is not compacted: call ``compact(upTo:)``.
    @discardableResult
    public func createSnapshot(at index: LogIndex, confState: ConfState? = nil, data: [UInt8]) throws(RaftError) -> Snapshot {
        let out = try beginSnapshot(at: index, confState: confState)
        do {
            try out.write(data)
            try out.seal()
        } catch {
            out.abort()
            throw error
        }
        return Snapshot(metadata: try finishSnapshot(out), data: data)
    }

    /// Starts a snapshot file at `index` (which must be durable): the output streams into a
    /// temporary file, and may be written and sealed on another thread.
    public func beginSnapshot(at index: LogIndex, confState: ConfState?) throws(RaftError) -> SnapshotOutput {
        try check()
        if index <= latestSnapshot.index {
            throw RaftError(.snapshotOutOfDate, "snapshot at \(index) is not newer than the held snapshot \(latestSnapshot.index)")
        }
        if index > durableLastIndex {
            throw RaftError(.unavailable, "snapshot at \(index) is past the last durable index \(durableLastIndex)")
        }
        let meta = SnapshotMetadata(index: index, term: try term(at: index), confState: try membership(confState, at: index))
        let writer = try snapshotter.create(SnapshotFileMetadata(raft: meta, appliedIndex: index))
        return SnapshotOutput(metadata: meta, target: .file(writer))
    }

    /// Seals the file if needed, renames it into place and makes it the latest snapshot.
    @discardableResult
    public func finishSnapshot(_ output: SnapshotOutput) throws(RaftError) -> SnapshotMetadata {
        do { try check() } catch {
            output.abort()
            throw error
        }
        guard case .file(let writer) = output.target else {
            throw RaftError(.invalidConfiguration, "snapshot \(output.metadata.index) was not begun by this storage")
        }
        if output.metadata.index <= latestSnapshot.index {
            output.abort()
            throw RaftError(.snapshotOutOfDate, "snapshot at \(output.metadata.index) is not newer than the held snapshot \(latestSnapshot.index)")
        }
        do {
            try output.seal()
            try writer.publish()
        } catch {
            output.abort()
            throw error
        }
        latestSnapshot = output.metadata
        return output.metadata
    }

    /// Discards entries up to and including `index`, which a snapshot must cover: records the
    /// new compaction point durably, then deletes whole segments at or below it.
    ///
    /// It never compacts past the oldest snapshot file kept (see
    /// ``FileLogStorageOptions/keepSnapshots``) that is still at or after the compaction point:
    /// each kept snapshot stays a fallback the log can be replayed from if a newer one is
    /// damaged. So it may discard less than asked, or nothing; ``firstIndex()`` says where the
    /// log starts.
    public func compact(upTo index: LogIndex) throws(RaftError) {
        try check()
        if index <= base.index { return }
        if index > durableLastIndex { throw RaftError(.unavailable, "compact to \(index) is past the last durable index \(durableLastIndex)") }
        if index > latestSnapshot.index {
            throw RaftError(.storage, "compact to \(index) would drop entries not covered by the snapshot at \(latestSnapshot.index)")
        }
        let index = min(index, try oldestFallbackSnapshot() ?? index)
        if index <= base.index { return }
        let t = try term(at: index)
        WALFormat.encodeBase(&pending, index: index, term: t, reset: false, conf: conf)
        // Update the in-memory view first: if the sync rolls to a new segment, its header must
        // carry the new compaction point.
        locations.removePrefix(base.index.distance(to: index))
        base = (index, t)
        if cacheStart <= index {
            let drop = min(cache.count, cacheStart.distance(to: index + 1))
            cache.removeFirst(drop)
            cacheStart = index + 1
        }
        try sync()
        try guarded { () throws(RaftError) in try deleteSegments(upTo: index) }
    }

    /// The index of the oldest snapshot file kept (the ``FileLogStorageOptions/keepSnapshots``
    /// newest at or below the latest snapshot, as the snapshotter prunes them) that is at or
    /// after the compaction point, so the log can still be replayed from it.
    func oldestFallbackSnapshot() throws(RaftError) -> LogIndex? {
        let kept = try snapshotter.fileNames().compactMap { Snapshotter.parse($0)?.index }
            .filter { $0 <= latestSnapshot.index.rawValue }.prefix(options.keepSnapshots)
        return kept.filter { $0 >= base.index.rawValue }.min().map { LogIndex(rawValue: $0) }
    }

    /// Installs a snapshot received from the leader: the snapshot file is written first, then
    /// the log reset is recorded durably. A crash in between is completed on the next open.
    public func applySnapshot(_ snapshot: Snapshot) throws(RaftError) {
        try check()
        let meta = snapshot.metadata
        if meta.index <= latestSnapshot.index {
            throw RaftError(.snapshotOutOfDate, "snapshot \(meta.index) is not newer than the held snapshot \(latestSnapshot.index)")
        }
        try snapshotter.save(SnapshotFileMetadata(raft: meta, appliedIndex: meta.index), data: snapshot.data)
        try resetLog(to: meta)
    }

    /// Starts a snapshot received from the leader: a temporary file of its own
    /// (`<index>-<term>.snap.<sequence>.recv.tmp`) the output streams into, from any one
    /// thread. Creating it writes nothing yet.
    public func beginReceivedSnapshot(_ metadata: SnapshotMetadata) throws(RaftError) -> SnapshotOutput {
        try check()
        let writer = try snapshotter.create(
            SnapshotFileMetadata(raft: metadata, appliedIndex: metadata.index), temporarySuffix: snapshotter.nextReceivedSuffix())
        return SnapshotOutput(metadata: metadata, target: .file(writer))
    }

    /// Installs a snapshot received into an output from ``beginReceivedSnapshot(_:)``: the
    /// file is sealed if needed and renamed into place, then the log reset is recorded durably,
    /// as ``applySnapshot(_:)-(Snapshot)`` does. The data is not copied or read again.
    public func applySnapshot(_ received: SnapshotOutput) throws(RaftError) {
        do { try check() } catch {
            received.abort()
            throw error
        }
        let meta = received.metadata
        guard case .file(let writer) = received.target else {
            try applySnapshot(Snapshot(metadata: meta, data: received.data))
            return
        }
        if meta.index <= latestSnapshot.index {
            received.abort()
            throw RaftError(.snapshotOutOfDate, "snapshot \(meta.index) is not newer than the held snapshot \(latestSnapshot.index)")
        }
        do {
            try received.seal()
            try writer.publish()
        } catch {
            received.abort()
            throw error
        }
        try resetLog(to: meta)
    }

    func resetLog(to meta: SnapshotMetadata) throws(RaftError) {
        WALFormat.encodeBase(&pending, index: meta.index, term: meta.term, reset: true, conf: meta.confState)
        if hard.commit < meta.index || hard.term < meta.term {
            // A later term carries no vote: never invent one.
            let hs = HardState(
                term: max(hard.term, meta.term), vote: meta.term > hard.term ? .none : hard.vote, commit: max(hard.commit, meta.index))
            WALFormat.encodeHardState(&pending, hs)
            hard = hs
        }
        latestSnapshot = meta
        conf = meta.confState
        base = (meta.index, meta.term)
        locations.removeAll()
        cache.removeAll()
        cacheStart = meta.index + 1
        try sync()
        try guarded { () throws(RaftError) in
            // Every entry is gone: all older segments can go.
            try deleteSegments(upTo: LogIndex(rawValue: .max))
        }
    }

    /// Writes block on the disk.
    public var performsBlockingIO: Bool { true }

    /// ``recovery``, for ``RaftNode`` to log and report.
    public var recoveryReport: StorageRecoveryReport? { recovery }

    /// Closes the files. Buffered, unsynced writes are dropped.
    public func close() {
        // A clean close leaves no zeros after the last record (a crash may; recovery reads them
        // as the end of the log).
        if failure == nil, let last = segments.last, last.filled > last.size {
            try? last.file.truncate(to: last.size)
        }
        for s in segments { s.file.close() }
        lockFile?.close()
        lockFile = nil
        segments.removeAll()
        failure = RaftError(.storage, "the storage is closed")
    }
}
