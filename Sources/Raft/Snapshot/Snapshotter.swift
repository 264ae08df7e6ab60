/// What a snapshot file records besides the state machine's data.
public struct SnapshotFileMetadata: Sendable, Hashable {
    /// Raft's view: last included index and term, membership.
    public var raft: SnapshotMetadata
    /// The state machine's own applied index when it produced the data (for on-disk state
    /// machines this may differ from `raft.index` only if the state machine says so).
    public var appliedIndex: LogIndex

    /// Creates snapshot file metadata.
    public init(raft: SnapshotMetadata, appliedIndex: LogIndex) {
        self.raft = raft
        self.appliedIndex = appliedIndex
    }
}

/// Writes and reads snapshot files atomically, with a checksum over metadata and data, as
/// streams so a state of any size never has to fit in memory.
///
/// Files live in one directory, named `<index>-<term>.snap` (16 hexadecimal digits each). A file
/// is written as `<name>.tmp`, synced, renamed into place, and the directory synced; a crash at
/// any point leaves either the complete file or a temporary one, which the next start removes.
/// The newest `keep` snapshots are kept. The format is described in the "Storage formats"
/// article.
public final class Snapshotter {
    /// The snapshot directory.
    public let directory: String
    /// How many snapshot files to keep.
    public let keep: Int
    let fs: any FileSystem
    /// Temporary files removed when the snapshotter opened (left by a crash mid-write).
    public private(set) var removedTemporaryFiles: [String] = []

    static let magic: [UInt8] = Array("SWRFTSNP".utf8)
    /// The version written. Version 2 records the whole membership (``ConfState/encoded()``)
    /// where version 1 had a list of voters; version 1 files are read too.
    static let version: UInt16 = 2
    static let readableVersions: ClosedRange<UInt16> = 1...2
    static let chunkSize = 1 << 20

    /// Opens (creating if needed) the snapshot directory and, unless told otherwise, removes
    /// temporary files a crash left behind (see ``removeTemporaryFiles()``).
    public init(
        directory: String, keep: Int = 3, fileSystem: any FileSystem = PosixFileSystem(), removeTemporaryFiles: Bool = true
    ) throws(RaftError) {
        guard keep >= 1 else { throw RaftError(.invalidConfiguration, "keep must be at least 1 snapshot, got \(keep)") }
        self.directory = directory
        self.keep = keep
        fs = fileSystem
        try fs.createDirectory(directory)
        if removeTemporaryFiles { try self.removeTemporaryFiles() }
    }

    /// Removes this library's temporary snapshot files (`<index>-<term>.snap.tmp`, and
    /// `<index>-<term>.snap.<sequence>.recv.tmp` for one received from a leader), left by a
    /// crash while writing; other files are never touched.
    public func removeTemporaryFiles() throws(RaftError) {
        var removed = false
        for name in try fs.contentsOfDirectory(directory) where Self.isTemporary(name) {
            try fs.remove(joinPath(directory, name))
            removedTemporaryFiles.append(name)
            removed = true
        }
        if removed { try fs.syncDirectory(directory) }
    }

    /// Files in the directory that are neither snapshots nor temporary snapshot files.
    public var unknownFiles: [String] {
        let names = (try? fs.contentsOfDirectory(directory)) ?? []
        return names.filter { n in Self.parse(n) == nil && !Self.isTemporary(n) }
    }

    /// The suffix of a snapshot file being written by this node (a state machine's snapshot).
    static let temporarySuffix = ".tmp"
    /// Received snapshots started since this snapshotter opened, naming their files.
    var receivedFiles: UInt64 = 0

    /// The suffix of the next snapshot file received from a leader: `.<sequence>.recv.tmp`,
    /// unique, so a received file never shares a name with one this node saves at the same
    /// index, nor with another received file of the same snapshot (a transfer started over
    /// while the old file's removal is still queued).
    func nextReceivedSuffix() -> String {
        receivedFiles += 1
        return "." + hex16(receivedFiles) + ".recv.tmp"
    }

    /// Whether `name` is one of this library's temporary snapshot files.
    static func isTemporary(_ name: String) -> Bool {
        if name.hasSuffix(".snap" + temporarySuffix) { return parse(String(name.dropLast(temporarySuffix.count))) != nil }
        // <38-character snapshot name>.<16 hexadecimal digits>.recv.tmp
        let u = Array(name.utf8)
        guard u.count == 38 + 17 + 9, name.hasSuffix(".recv.tmp"), u[38] == UInt8(ascii: "."), isLowerHex(u[39..<55]) else { return false }
        return parse(String(decoding: u[0..<38], as: UTF8.self)) != nil
    }

    static func fileName(_ m: SnapshotMetadata) -> String { "\(hex16(m.index.rawValue))-\(hex16(m.term.rawValue)).snap" }

    /// The index and term a snapshot file name encodes, or `nil` if it is not one of ours.
    static func parse(_ name: String) -> (index: UInt64, term: UInt64)? {
        let u = Array(name.utf8)
        guard u.count == 38, name.hasSuffix(".snap"), u[16] == UInt8(ascii: "-"), isLowerHex(u[0..<16]), isLowerHex(u[17..<33]),
            let index = UInt64(String(decoding: u[0..<16], as: UTF8.self), radix: 16),
            let term = UInt64(String(decoding: u[17..<33], as: UTF8.self), radix: 16)
        else { return nil }
        return (index, term)
    }

    /// Snapshot file names, newest (highest index) first. Other files are ignored.
    public func fileNames() throws(RaftError) -> [String] {
        try fs.contentsOfDirectory(directory).filter { Self.parse($0) != nil }.sorted(by: >)
    }

    /// Starts writing a snapshot. Write the data with ``SnapshotWriter/write(_:)`` and finish with
    /// ``SnapshotWriter/commit()``; until then nothing is visible.
    public func create(_ metadata: SnapshotFileMetadata) throws(RaftError) -> SnapshotWriter {
        try create(metadata, temporarySuffix: Self.temporarySuffix)
    }

    /// Starts writing a snapshot under `<name><temporarySuffix>`.
    func create(_ metadata: SnapshotFileMetadata, temporarySuffix: String) throws(RaftError) -> SnapshotWriter {
        let final = joinPath(directory, Self.fileName(metadata.raft))
        let tmp = final + temporarySuffix
        let file = try fs.open(tmp, create: true)
        try file.truncate(to: 0)
        var w = ByteWriter()
        w.raw(Self.magic)
        w.u16(Self.version)
        w.u16(0)
        let meta = Self.encode(metadata)
        w.u32(UInt32(meta.count))
        w.raw(meta)
        return try SnapshotWriter(snapshotter: self, file: file, tmpPath: tmp, finalPath: final, index: metadata.raft.index, header: w.bytes)
    }

    static func encode(_ m: SnapshotFileMetadata) -> [UInt8] {
        var w = ByteWriter()
        w.u64(m.raft.index.rawValue)
        w.u64(m.raft.term.rawValue)
        w.u64(m.appliedIndex.rawValue)
        w.raw(m.raft.confState.encoded())
        return w.bytes
    }

    /// Writes a whole snapshot held in memory (small states, tests).
    public func save(_ metadata: SnapshotFileMetadata, data: [UInt8]) throws(RaftError) {
        let w = try create(metadata)
        do {
            try w.write(data)
            try w.commit()
        } catch {
            w.abort()
            throw error
        }
    }

    /// Opens snapshot file `name` after verifying its checksum (one streaming pass), so that a
    /// reader never hands out data from a damaged file.
    public func open(_ name: String) throws(RaftError) -> SnapshotReader {
        try open(name, verification: .beforeReading)
    }

    /// Opens snapshot file `name`, checking its checksum as `verification` says: before
    /// reading (one pass, then the reads), while reading (the ``SnapshotReader/next()`` that
    /// reaches the end throws if it does not match), or not at all.
    public func open(_ name: String, verification: SnapshotVerification) throws(RaftError) -> SnapshotReader {
        let path = joinPath(directory, name)
        let file = try fs.open(path, create: false)
        do {
            let reader = try SnapshotReader(file: file, path: path, verifyWhileReading: verification == .whileReading)
            if verification == .beforeReading { try reader.verify() }
            return reader
        } catch {
            file.close()
            throw error
        }
    }

    /// The newest snapshot that opens cleanly and has an index of at least `minIndex` (the
    /// point from which the log can continue it), with the problems found in newer files. `nil`
    /// if there is none.
    public func newestValid(atLeast minIndex: LogIndex = .zero) throws(RaftError) -> (reader: SnapshotReader, skipped: [RaftError])? {
        var skipped: [RaftError] = []
        for name in try fileNames() {
            do {
                let r = try open(name)
                if r.metadata.raft.index < minIndex {
                    r.close()
                    return nil
                }
                return (r, skipped)
            } catch {
                skipped.append(error)
            }
        }
        return nil
    }

    /// After writing the snapshot at `index`, deletes all but the newest `keep` snapshots at or
    /// below it. Files above it (damaged leftovers the open skipped) and foreign files are never
    /// counted, so they can never push out the snapshot just written.
    func prune(keepingAtOrBelow index: LogIndex) throws(RaftError) {
        let names = try fileNames().filter { Self.parse($0)!.index <= index.rawValue }
        guard names.count > keep else { return }
        for name in names[keep...] {
            try fs.remove(joinPath(directory, name))
            try fs.syncDirectory(directory)
        }
    }
}

/// Streams a snapshot into a temporary file; ``commit()`` makes it durable and visible.
///
/// Creating one only creates the (empty) temporary file: the header goes out with the first
/// data, on whichever thread writes it.
public final class SnapshotWriter {
    let snapshotter: Snapshotter
    let file: any StorageFile
    let tmpPath: String
    let finalPath: String
    let index: LogIndex
    var offset = 0
    var crc: UInt32 = 0
    var done = false
    var sealed = false
    var published = false
    /// The header, until it is written with the first data.
    var header: [UInt8]?

    init(snapshotter: Snapshotter, file: any StorageFile, tmpPath: String, finalPath: String, index: LogIndex, header: [UInt8]) throws(RaftError) {
        self.snapshotter = snapshotter
        self.index = index
        self.file = file
        self.tmpPath = tmpPath
        self.finalPath = finalPath
        self.header = header
    }

    func append(_ bytes: [UInt8]) throws(RaftError) {
        if let h = header {
            header = nil
            try append(h)
        }
        try file.write(bytes, at: offset)
        offset += bytes.count
        crc = bytes.withUnsafeBytes { CRC32C.update(crc, $0) }
    }

    /// Appends state-machine data (any amount; it is framed in chunks).
    public func write(_ data: [UInt8]) throws(RaftError) {
        guard !done else { throw RaftError(.storage, "snapshot \(finalPath) was already committed or aborted") }
        var start = 0
        while start < data.count {
            let end = min(data.count, start + Snapshotter.chunkSize)
            var w = ByteWriter()
            w.u32(UInt32(end - start))
            w.bytes.append(contentsOf: data[start..<end])
            try append(w.bytes)
            start = end
        }
    }

    /// Finishes the file: terminator and checksum, sync, rename into place, sync the directory,
    /// and prune old snapshots (``seal()`` then ``publish()``).
    public func commit() throws(RaftError) {
        try seal()
        try publish()
    }

    /// Writes the terminator and checksum and syncs the temporary file; nothing is visible yet.
    /// This is the slow part of a commit, and may run on another thread than ``publish()``.
    public func seal() throws(RaftError) {
        guard !done else { throw RaftError(.storage, "snapshot \(finalPath) was already committed or aborted") }
        done = true
        defer { file.close() }
        var w = ByteWriter()
        w.u32(0)
        try append(w.bytes)
        var t = ByteWriter()
        t.u32(crc)
        try file.write(t.bytes, at: offset)
        try file.sync()
        sealed = true
    }

    /// Renames a sealed file into place, syncs the directory and prunes old snapshots.
    public func publish() throws(RaftError) {
        guard sealed, !published else { throw RaftError(.storage, "snapshot \(finalPath) is not sealed, or was published already") }
        published = true
        try snapshotter.fs.rename(tmpPath, to: finalPath)
        try snapshotter.fs.syncDirectory(snapshotter.directory)
        try snapshotter.prune(keepingAtOrBelow: index)
    }

    /// Abandons the snapshot and removes the temporary file.
    public func abort() {
        guard !published else { return }
        if !done { file.close() }
        done = true
        published = true
        try? snapshotter.fs.remove(tmpPath)
    }
}

/// Reads a snapshot file as a stream of data chunks.
///
/// Opened with ``SnapshotVerification/whileReading`` it checksums what it reads as it goes and
/// reports the end only once the file's checksum matched, so one pass both verifies and reads.
public final class SnapshotReader {
    /// The file's metadata.
    public let metadata: SnapshotFileMetadata
    /// The file's path.
    public let path: String
    let file: any StorageFile
    let dataStart: Int
    var offset: Int
    var finished = false
    /// The checksum of everything read so far, when verifying while reading.
    var runningChecksum: UInt32?

    init(file: any StorageFile, path: String, verifyWhileReading: Bool = false) throws(RaftError) {
        self.file = file
        self.path = path
        func bad(_ why: String, _ at: Int) -> RaftError {
            RaftError(.corruption, "snapshot file \(path) at offset \(at): \(why)")
        }
        let head = try file.read(at: 0, count: 16)
        var r = ByteReader(head)
        guard let magic = r.raw(8), magic == Snapshotter.magic else { throw bad("not a snapshot file (bad magic)", 0) }
        guard let version = r.u16(), let _ = r.u16(), let metaLen = r.u32() else { throw bad("truncated header", 8) }
        guard Snapshotter.readableVersions.contains(version) else {
            throw RaftError(
                .unsupportedFormat,
                "snapshot file \(path) has format version \(version); this library reads versions \(Snapshotter.readableVersions.lowerBound) to \(Snapshotter.readableVersions.upperBound): open it with the library version that wrote it")
        }
        guard metaLen <= 1 << 20 else { throw bad("metadata length \(metaLen) is implausible", 12) }
        let metaBytes = try file.read(at: 16, count: Int(metaLen))
        var m = ByteReader(metaBytes)
        guard let index = m.u64(), let term = m.u64(), let applied = m.u64() else { throw bad("malformed metadata", 16) }
        let conf: ConfState
        if version == 1 {
            guard let n = m.u32(), Int(n) * 8 == m.remaining else { throw bad("malformed metadata", 16) }
            var voters: [NodeID] = []
            for _ in 0..<n { voters.append(NodeID(rawValue: m.u64()!)) }
            conf = ConfState(voters: voters)
        } else {
            do { conf = try ConfState(decoding: metaBytes[24...]) } catch {
                throw bad("malformed metadata: \(error.message)", 16 + 24)
            }
        }
        metadata = SnapshotFileMetadata(
            raft: SnapshotMetadata(index: LogIndex(rawValue: index), term: Term(rawValue: term), confState: conf),
            appliedIndex: LogIndex(rawValue: applied))
        dataStart = 16 + Int(metaLen)
        offset = dataStart
        if verifyWhileReading {
            let header = head + metaBytes
            runningChecksum = header.withUnsafeBytes { CRC32C.update(0, $0) }
        }
    }

    /// Checks the whole file's framing and checksum in one streaming pass.
    func verify() throws(RaftError) {
        let size = try file.size()
        var crc: UInt32 = 0
        let header = try file.read(at: 0, count: dataStart)
        crc = header.withUnsafeBytes { CRC32C.update(crc, $0) }
        var pos = dataStart
        while true {
            let lenBytes = try file.read(at: pos, count: 4)
            var r = ByteReader(lenBytes)
            guard let len = r.u32() else { throw RaftError(.corruption, "snapshot file \(path) at offset \(pos): truncated chunk header") }
            crc = lenBytes.withUnsafeBytes { CRC32C.update(crc, $0) }
            pos += 4
            if len == 0 { break }
            guard Int(len) <= Snapshotter.chunkSize, pos + Int(len) <= size else {
                throw RaftError(.corruption, "snapshot file \(path) at offset \(pos - 4): chunk of \(len) bytes runs past the end")
            }
            let chunk = try file.read(at: pos, count: Int(len))
            crc = chunk.withUnsafeBytes { CRC32C.update(crc, $0) }
            pos += Int(len)
        }
        let trailer = try file.read(at: pos, count: 4)
        var t = ByteReader(trailer)
        guard let stored = t.u32(), pos + 4 == size else {
            throw RaftError(.corruption, "snapshot file \(path) at offset \(pos): missing checksum or trailing garbage")
        }
        guard stored == crc else {
            throw RaftError(.corruption, "snapshot file \(path): checksum mismatch (stored \(stored), computed \(crc))")
        }
    }

    /// The next chunk of state-machine data, or `nil` at the end (when verifying while
    /// reading: only once the file's checksum matched).
    public func next() throws(RaftError) -> [UInt8]? {
        if finished { return nil }
        let lenBytes = try file.read(at: offset, count: 4)
        var r = ByteReader(lenBytes)
        guard let len = r.u32() else { throw RaftError(.corruption, "snapshot file \(path) at offset \(offset): truncated") }
        guard Int(len) <= Snapshotter.chunkSize else {
            throw RaftError(.corruption, "snapshot file \(path) at offset \(offset): chunk of \(len) bytes is larger than any this library writes")
        }
        offset += 4
        if let crc = runningChecksum { runningChecksum = lenBytes.withUnsafeBytes { CRC32C.update(crc, $0) } }
        if len == 0 {
            try checkTrailer()
            finished = true
            return nil
        }
        let chunk = try file.read(at: offset, count: Int(len))
        guard chunk.count == Int(len) else { throw RaftError(.corruption, "snapshot file \(path) at offset \(offset): truncated") }
        offset += Int(len)
        if let crc = runningChecksum { runningChecksum = chunk.withUnsafeBytes { CRC32C.update(crc, $0) } }
        return chunk
    }

    /// When verifying while reading: the stored checksum after the terminator must match what
    /// was read, and nothing may follow it.
    func checkTrailer() throws(RaftError) {
        guard let crc = runningChecksum else { return }
        var t = ByteReader(try file.read(at: offset, count: 4))
        guard let stored = t.u32(), offset + 4 == (try file.size()) else {
            throw RaftError(.corruption, "snapshot file \(path) at offset \(offset): missing checksum or trailing garbage")
        }
        guard stored == crc else {
            throw RaftError(.corruption, "snapshot file \(path): checksum mismatch (stored \(stored), computed \(crc))")
        }
    }

    /// All remaining data in one array (small states, tests).
    public func readAll() throws(RaftError) -> [UInt8] {
        var out: [UInt8] = []
        while let c = try next() { out.append(contentsOf: c) }
        return out
    }

    /// Closes the file.
    public func close() { file.close() }
}
