extension FileLogStorage {
    /// Rebuilds the in-memory index from the segments and reconciles it with the snapshots.
    ///
    /// The segments are streamed, oldest first, record by record, through a window of a few
    /// MiB; an entry's payload is checksummed but never decoded or kept, so what recovery
    /// holds afterwards is the index alone (its ``LocationTable``), as after writing.
    func recover(voters: [NodeID]) throws(RaftError) {
        var found: [(seq: UInt64, name: String)] = []
        for name in try fs.contentsOfDirectory(walDirectory) {
            if let seq = WALFormat.parseSegmentName(name) { found.append((seq, name)) } else { recovery.unknownFiles.append(name) }
        }
        found.sort { $0.seq < $1.seq }
        for k in found.indices.dropFirst() where found[k].seq != found[k - 1].seq + 1 {
            throw RaftError(
                .corruption,
                "log segments are missing between \(found[k - 1].name) and \(found[k].name) in \(walDirectory); refusing to start without them")
        }

        // Repairs are collected first and carried out only once every check has passed, so
        // an open that fails leaves the files exactly as it found them.
        var repairs: [Repair] = []
        var replay = Replay()
        var opened: [Segment] = []
        do throws(RaftError) {
            for (k, f) in found.enumerated() {
                let isLast = k == found.count - 1
                let path = joinPath(walDirectory, f.name)
                let file = try fs.open(path, create: false)
                var scanner = SegmentScanner(file: file, size: try file.size())
                // A segment that never got past its header (or not even that): a crash while
                // starting it. Nothing in it was ever reported durable.
                if isLast, try scanner.holdsNoRecord(seq: f.seq) {
                    file.close()
                    repairs.append(.removeSegment(path: path))
                    recovery.removedEmptySegment = f.name
                    continue
                }
                opened.append(Segment(seq: f.seq, path: path, file: file, size: 0, filled: scanner.size, maxIndex: .zero))
                try scanner.load(0, min(scanner.size, WALFormat.headerSize))
                try checkHeader(scanner.window, seq: f.seq, path: path)
                var pos = WALFormat.headerSize
                var maxIndex = LogIndex.zero
                records: while pos < scanner.size {
                    switch try scanner.parse(at: pos) {
                    case .record(let length, let record):
                        if case .entry(let index, _) = record, index > maxIndex { maxIndex = index }
                        try replay.apply(record, path: path, offset: pos, length: length, seq: f.seq)
                        pos += length
                        continue records
                    case .unknownContent:
                        throw RaftError(
                            .corruption,
                            "log segment \(path) at offset \(pos): record has a valid checksum but content this library does not know; refusing to start")
                    case .damaged:
                        break
                    }
                    guard isLast else {
                        throw RaftError(
                            .corruption,
                            "log segment \(path) at offset \(pos): record failed its checksum or framing; refusing to start rather than drop data after it")
                    }
                    if try scanner.holdsOnlyZeros(from: pos) {
                        // Zeros written ahead of the records (preallocation), or an unsynced
                        // extension: the log ends here, nothing was damaged.
                        break records
                    }
                    // The damage analysis looks at the rest of the file, from the start of the
                    // damaged record's 512-byte sector (so that sector offsets stay aligned).
                    let origin = pos / 512 * 512
                    let rest = try file.read(at: origin, count: scanner.size - origin)
                    let at = pos - origin
                    if let reason = tornTailReason(rest, at: at) {
                        repairs.append(.truncate(file: file, at: pos))
                        let cut = intactRecords(rest, after: at)
                        recovery.truncatedTail = StorageRecoveryReport.TruncatedTail(
                            file: path, offset: pos, bytes: scanner.size - pos, reason: reason, entries: cut.entries, hardStates: cut.hardStates)
                        opened[opened.count - 1].filled = pos
                        break records
                    }
                    throw RaftError(
                        .corruption,
                        "log segment \(path) at offset \(pos): record failed its checksum or framing; refusing to start rather than drop data after it")
                }
                opened[opened.count - 1].size = min(pos, scanner.size)
                opened[opened.count - 1].maxIndex = maxIndex
            }
            if let gap = replay.gap { throw try missingEntries(gap, newest: opened[opened.count - 1], lastLoaded: replay.last) }
        } catch {
            for s in opened { s.file.close() }
            throw error
        }
        pendingRepairs = repairs

        if opened.isEmpty {
            if !(try snapshotter.fileNames()).isEmpty {
                throw RaftError(
                    .corruption,
                    "the log directory \(walDirectory) is empty but snapshots exist: the log (and the vote it held) is lost; restore it or wipe the whole directory")
            }
            try runPendingRepairs()
            try snapshotter.removeTemporaryFiles()
            recovery.removedTemporaryFiles = snapshotter.removedTemporaryFiles
            recovery.unknownFiles += snapshotter.unknownFiles.map { "snap/" + $0 }
            try createFirstSegment(voters: voters)
            return
        }
        segments = opened
        guard let b = replay.base else {
            throw RaftError(.corruption, "no compaction record found in \(walDirectory): the segments are not from this library")
        }
        base = (b.index, b.term)
        conf = b.conf
        hard = replay.hard
        locations = replay.locations
        replay = Replay()

        if !voters.isEmpty && conf.voters != ConfState(voters: voters).voters && !conf.voters.isEmpty {
            throw RaftError(
                .invalidConfiguration,
                "\(directory) holds the log of a cluster with voters \(conf.voters.map(\.description).joined(separator: ",")), not \(ConfState(voters: voters).voters.map(\.description).joined(separator: ",")): wrong directory or wrong cluster")
        }
        if conf.voters.isEmpty { conf = ConfState(voters: voters) }
        durableLastIndex = lastIndex()
        cacheStart = lastIndex() + 1
        let snapshot = try chooseSnapshot()
        // Every check passed: now repair.
        try runPendingRepairs()
        // What was read counts as durable from now on, so make it so: a process killed between
        // a write and its sync leaves records in the page cache that a later power loss would
        // still take, and a segment or snapshot whose directory entry was never synced.
        if let newest = segments.last { try newest.file.sync() }
        try fs.syncDirectory(walDirectory)
        try fs.syncDirectory(snapshotter.directory)
        segments.last?.file.reserve(options.segmentBytes + (1 << 20))
        try snapshotter.removeTemporaryFiles()
        recovery.removedTemporaryFiles = snapshotter.removedTemporaryFiles
        try adopt(snapshot)
        if hard.commit > lastIndex() {
            // Committed entries that are gone: the log lost records at its end (a cut at a
            // record boundary leaves no other trace). The core clamps its commit index to the
            // log and catches up from the leader.
            recovery.lostCommittedEntries = (lastIndex() + 1)...hard.commit
        }
        recovery.segments = segments.count
        recovery.entries = locations.count
    }

    /// The log as replayed so far, record by record in file order, as the writes built it.
    ///
    /// A reset record (a snapshot install) drops every entry written before it and sets the
    /// compaction point. A compaction record moves the compaction point forward (never back)
    /// and drops the entries at or below it. An entry at or below the compaction point is not
    /// loaded, but when it was written it replaced every later entry, so nothing loaded so far
    /// survives it; an entry at or below the last one loaded replaces the suffix from its
    /// index. Hard states: the last one wins.
    ///
    /// Compaction records are written to the newest segment while older segments still start
    /// with the compaction point of their day, so the first entry of the oldest segment kept
    /// may lie well above the compaction point replay knows when it reads it. Such a gap (and
    /// any other) stays open until a later compaction record covers it, and is corruption if
    /// none does.
    struct Replay {
        var base: (index: LogIndex, term: Term, conf: ConfState)?
        var locations = LocationTable()
        /// The index of `locations[0]`: `base.index + 1` unless a gap is open.
        var first: LogIndex = 1
        var hard = HardState()
        /// The first entry after missing ones, while no compaction record covers them.
        var gap: Gap?
        /// Whether an entry record was replayed yet.
        var sawEntry = false

        struct Gap {
            var path: String
            var offset: Int
            var index: LogIndex
            var after: LogIndex
            /// At the first entry of the oldest segment: the entries before it went with
            /// segments deleted (or lost), not with damage inside the log.
            var atFront: Bool
        }

        /// The last index loaded (`first - 1` when none is).
        var last: LogIndex { first.advanced(by: locations.count - 1) }

        mutating func apply(_ record: ReplayRecord, path: String, offset: Int, length: Int, seq: UInt64) throws(RaftError) {
            switch record {
            case .hardState(let h):
                hard = h
            case .base(let index, let term, true, let conf):
                base = (index, term, conf)
                locations.removeAll()
                first = index + 1
                gap = nil
            case .base(let index, let term, false, let conf):
                if let b = base, index < b.index { return }
                base = (index, term, conf)
                if first <= index {
                    locations.removePrefix(first.distance(to: index + 1))
                    first = index + 1
                }
                if first == index + 1 { gap = nil }
            case .entry(let index, let term):
                let firstEntry = !sawEntry
                sawEntry = true
                guard let b = base else {
                    throw RaftError(
                        .corruption,
                        "log segment \(path) at offset \(offset): entry \(index) comes before any compaction record; the segment is not from this library")
                }
                if index <= b.index {
                    // Compacted now; but when it was written it replaced every later entry.
                    locations.removeAll()
                    first = b.index + 1
                    gap = nil
                    return
                }
                if locations.isEmpty || index < first {
                    // The first entry loaded, or one replacing everything loaded.
                    if index > b.index + 1 && gap == nil {
                        gap = Gap(path: path, offset: offset, index: index, after: b.index, atFront: firstEntry)
                    }
                    locations.removeAll()
                    first = index
                } else if index <= last {
                    locations.removeSuffix(keeping: first.distance(to: index))
                } else if index != last + 1 {
                    gap = Gap(path: path, offset: offset, index: index, after: last, atFront: false)
                    locations.removeAll()
                    first = index
                }
                locations.append(Location(seq: seq, offset: offset, length: length, term: term))
            }
        }
    }

    /// The error for entries missing that no compaction record covers, naming the likely
    /// cause. Missing before the first entry of the oldest segment, they went with segments
    /// deleted at the front: by a compaction if a snapshot covers them, and then the compaction
    /// record that allowed it (written to the newest segment, and synced before any deletion)
    /// is gone, so the newest segment lost synced records at its end.
    func missingEntries(_ gap: Replay.Gap, newest: Segment, lastLoaded: LogIndex) throws(RaftError) -> RaftError {
        let at = "log segment \(gap.path) at offset \(gap.offset): entry \(gap.index) follows entry \(gap.after); entries are missing"
        guard gap.atFront else { return RaftError(.corruption, at) }
        let missing = "\(gap.after + 1)...\(gap.index - 1)"
        let covering = try snapshotter.fileNames().compactMap { Snapshotter.parse($0)?.index }.filter { $0 >= gap.index.rawValue - 1 }
        guard let snapshot = covering.max() else {
            return RaftError(
                .corruption,
                "\(at): the oldest segment starts at entry \(gap.index), and neither a compaction record nor a snapshot covers entries \(missing) before it; the segments that held them are missing; refusing to start")
        }
        return RaftError(
            .corruption,
            "\(at): the oldest segment starts at entry \(gap.index) and the snapshot at \(snapshot) covers entries \(missing), so a compaction deleted the segments that held them, but no compaction record up to \(gap.index - 1) is left. Compaction records are written to the newest segment, \(newest.path), and synced before any segment is deleted: its end was lost (it now ends at offset \(newest.size), after entry \(lastLoaded)), with records that had been synced; refusing to start")
    }

    /// What replay needs of a record: of an entry only its index and term (the payload is
    /// checksummed, not decoded).
    enum ReplayRecord {
        case entry(index: LogIndex, term: Term)
        case hardState(HardState)
        case base(index: LogIndex, term: Term, reset: Bool, conf: ConfState)
    }

    enum ParseOutcome {
        case record(Int, ReplayRecord)
        /// Framing and checksum are fine but the content is unknown: not damage, refuse.
        case unknownContent
        case damaged
    }

    /// Reads one segment front to back through a window, so that a segment of any size is
    /// never held whole.
    struct SegmentScanner {
        let file: any StorageFile
        /// The file's size when recovery opened it.
        let size: Int
        /// Bytes `windowStart ..< windowStart + window.count` of the file.
        var window: [UInt8] = []
        var windowStart = 0
        /// Large enough that reads cost little per record, small enough to stay out of the way.
        static let windowBytes = 1 << 20

        init(file: any StorageFile, size: Int) {
            self.file = file
            self.size = size
        }

        /// Makes bytes `pos ..< pos + count` (inside the file) available in `window`.
        mutating func load(_ pos: Int, _ count: Int) throws(RaftError) {
            if pos >= windowStart && pos + count <= windowStart + window.count { return }
            window = try file.read(at: pos, count: min(size - pos, max(count, Self.windowBytes)))
            windowStart = pos
            if window.count < count {
                throw RaftError(.io, "a log segment shrank while recovery read it: \(window.count) bytes at offset \(pos), expected \(count)")
            }
        }

        /// Parses the record at `pos`.
        mutating func parse(at pos: Int) throws(RaftError) -> ParseOutcome {
            if size - pos < WALFormat.frameSize { return .damaged }
            try load(pos, WALFormat.frameSize)
            let len = Int(le32(window, pos - windowStart))
            guard len > 0, len <= WALFormat.maxBody, len <= size - pos - WALFormat.frameSize else { return .damaged }
            try load(pos, WALFormat.frameSize + len)
            return parseRecord(window, at: pos - windowStart)
        }

        /// Whether every byte from `pos` to the end of the file is zero.
        mutating func holdsOnlyZeros(from pos: Int) throws(RaftError) -> Bool {
            var p = pos
            while p < size {
                try load(p, min(size - p, Self.windowBytes))
                let w = p - windowStart
                let allZero = window.withUnsafeBytes { b in
                    var i = w
                    while i < b.count {
                        if b[i] != 0 { return false }
                        i += 1
                    }
                    return true
                }
                if !allZero { return false }
                p = windowStart + window.count
            }
            return true
        }

        /// Whether the file holds nothing but (part of) the header of segment `seq` and zeros:
        /// a crash while creating it, before any record arrived.
        mutating func holdsNoRecord(seq: UInt64) throws(RaftError) -> Bool {
            let header = WALFormat.header(seq: seq)
            var pos = 0
            while pos < size {
                try load(pos, min(size - pos, Self.windowBytes))
                for i in (pos - windowStart)..<window.count {
                    let b = window[i]
                    if b == 0 { continue }
                    let at = windowStart + i
                    if at < header.count && b == header[at] { continue }
                    return false
                }
                pos = windowStart + window.count
            }
            return true
        }
    }

    /// A change recovery makes to the files, once every check has passed.
    enum Repair {
        /// Delete a segment that never got past its header.
        case removeSegment(path: String)
        /// Cut a torn tail off.
        case truncate(file: any StorageFile, at: Int)
    }

    func runPendingRepairs() throws(RaftError) {
        for r in pendingRepairs {
            switch r {
            case .removeSegment(let path):
                try fs.remove(path)
                try fs.syncDirectory(walDirectory)
            case .truncate(let file, let at):
                try file.truncate(to: at)
                try file.sync()
            }
        }
        pendingRepairs = []
    }

    /// Picks the newest valid snapshot and checks it covers the compaction point. A snapshot
    /// written by another format version stops the open: it is not damage to skip.
    func chooseSnapshot() throws(RaftError) -> SnapshotFileMetadata? {
        var chosen: SnapshotFileMetadata?
        for name in try snapshotter.fileNames() {
            do {
                let r = try snapshotter.open(name)
                r.close()
                chosen = r.metadata
                break
            } catch {
                if error.code == .unsupportedFormat { throw error }
                recovery.skippedSnapshots.append("\(name): \(error.message)")
            }
        }
        recovery.unknownFiles += snapshotter.unknownFiles.map { "snap/" + $0 }
        if base.index > .zero {
            guard let s = chosen, s.raft.index >= base.index else {
                throw RaftError(
                    .corruption,
                    "the log is compacted up to \(base.index) but no valid snapshot at or after it exists in \(snapshotter.directory)"
                        + (recovery.skippedSnapshots.isEmpty ? "" : " (damaged: \(recovery.skippedSnapshots.joined(separator: "; ")))"))
            }
        }
        return chosen
    }

    /// Records the chosen snapshot, completing a snapshot install a crash interrupted.
    func adopt(_ chosen: SnapshotFileMetadata?) throws(RaftError) {
        guard let s = chosen else { return }
        latestSnapshot = s.raft
        if s.raft.index > lastIndex() || (try? term(at: s.raft.index)) != s.raft.term {
            // The snapshot file was installed but the log reset was not recorded: finish it.
            try resetLog(to: s.raft)
            recovery.completedSnapshotInstall = s.raft.index
        } else if s.raft.index >= base.index {
            conf = s.raft.confState
        }
    }

    func createFirstSegment(voters: [NodeID]) throws(RaftError) {
        let path = joinPath(walDirectory, WALFormat.segmentName(0))
        let file = try fs.open(path, create: true)
        try file.truncate(to: 0)
        var bytes = WALFormat.header(seq: 0)
        WALFormat.encodeBase(&bytes, index: .zero, term: .zero, reset: false, conf: ConfState(voters: voters))
        WALFormat.encodeHardState(&bytes, HardState())
        try file.write(bytes, at: 0)
        file.reserve(options.segmentBytes + (1 << 20))
        try file.sync()
        try fs.syncDirectory(walDirectory)
        segments = [Segment(seq: 0, path: path, file: file, size: bytes.count, filled: bytes.count, maxIndex: .zero)]
        conf = ConfState(voters: voters)
        recovery.segments = 1
    }

    func checkHeader(_ bytes: [UInt8], seq: UInt64, path: String) throws(RaftError) {
        guard bytes.count >= WALFormat.headerSize, Array(bytes[0..<8]) == WALFormat.magic else {
            throw RaftError(.corruption, "log segment \(path) at offset 0: not a segment of this library (bad magic)")
        }
        var r = ByteReader(bytes, at: 8)
        let version = r.u16()!
        _ = r.u16()
        let storedSeq = r.u64()!
        let crc = r.u32()!
        guard CRC32C.checksum(bytes, 0..<20) == crc else {
            throw RaftError(.corruption, "log segment \(path) at offset 0: header checksum mismatch")
        }
        if version != WALFormat.version {
            throw RaftError(.unsupportedFormat, "log segment \(path) has format version \(version); this library reads version \(WALFormat.version)")
        }
        guard storedSeq == seq else {
            throw RaftError(.corruption, "log segment \(path) at offset 0: header says segment \(storedSeq), the name says \(seq)")
        }
    }

    /// Whether the damage at `pos` is what an interrupted write can leave at the end of a file,
    /// and which kind: a record that reaches into a lost sector, a record cut short (or fewer
    /// than 8 bytes), or a final record whose contents never fully arrived (followed by
    /// nothing, or by zeros only). `nil` for anything else (damage followed by more data):
    /// corruption.
    func tornTailReason(_ bytes: [UInt8], at pos: Int) -> StorageRecoveryReport.TruncatedTail.Reason? {
        if overlapsLostSector(bytes, at: pos) { return .lostSector }
        var r = ByteReader(bytes, at: pos)
        guard let len = r.u32(), r.u32() != nil else { return .incompleteRecord }
        // Writes arrive in order and the length comes first: an interrupted write never leaves
        // a length this library cannot have written.
        if len == 0 || Int(len) > WALFormat.maxBody { return nil }
        let end = pos + WALFormat.frameSize + Int(len)
        if end < bytes.count {
            // The last record, whole in size but not in content: torn only if only zeros follow.
            return bytes[end...].allSatisfy { $0 == 0 } ? .damagedLastRecord : nil
        }
        // The record runs past the end of the file. A damaged length field looks like that too,
        // so look for the records that would follow it: an unbroken chain of intact records
        // from somewhere after the damage to the end of the file means the damage was not the
        // end of the writes. (A single record-shaped run of bytes inside a torn entry's data is
        // not enough: the chain must reach the end.)
        var p = pos + 1
        while p + WALFormat.frameSize < bytes.count {
            if case .record = parseRecord(bytes, at: p), chainReachesEnd(bytes, from: p) { return nil }
            p += 1
        }
        return .incompleteRecord
    }

    /// The entries (lowest and highest index) and hard states of the intact records after the
    /// damaged one at `pos`: what a cut there drops besides the damaged record. Found by
    /// trying every offset after `pos`, and following each record found to the next.
    func intactRecords(_ bytes: [UInt8], after pos: Int) -> (entries: ClosedRange<LogIndex>?, hardStates: [HardState]) {
        var low: LogIndex?
        var high: LogIndex?
        var hardStates: [HardState] = []
        var p = pos + 1
        while p + WALFormat.frameSize < bytes.count {
            // Cheap checks first: a plausible length for a known type, inside the file.
            let len = Int(le32(bytes, p))
            let start = p + WALFormat.frameSize
            let type = bytes[start]
            let plausible =
                len > 0 && len <= bytes.count - start
                && ((type == WALFormat.RecordType.entry.rawValue && len >= 18) || (type == WALFormat.RecordType.hardState.rawValue && len == 25)
                    || type == WALFormat.RecordType.base.rawValue)
            guard plausible, case .record(let length, let record) = parseRecord(bytes, at: p) else {
                p += 1
                continue
            }
            switch record {
            case .entry(let index, _):
                low = min(low ?? index, index)
                high = max(high ?? index, index)
            case .hardState(let h):
                hardStates.append(h)
            case .base:
                break
            }
            p += length
        }
        if let low, let high { return (low...high, hardStates) }
        return (nil, hardStates)
    }

    /// Whether the damaged record at `pos` reaches into a 512-byte disk sector that holds
    /// nothing but zeros from the record on: a sector of the last, unsynced batch that never
    /// reached the disk while later ones did (writes over preallocated zeros reach the disk in
    /// any order).
    ///
    /// A sector that never arrived keeps what it held at the last sync, and everything at or
    /// after the first damaged record lies past the last sync, where the segment held only
    /// zeros. So the test is on the sector, not only on the record's part of it: zeros from
    /// the record's start (or the sector's start, if later) to the sector's end (or the file's).
    /// A record that reaches just a few bytes into a lost sector is caught as well as one
    /// lying wholly inside it; a zero run inside a record's data that stops before the sector
    /// ends is not mistaken for one. The record's span is its framed length when that is
    /// plausible, otherwise the rest of its sector and the next one.
    func overlapsLostSector(_ bytes: [UInt8], at pos: Int) -> Bool {
        let sector = 512
        var r = ByteReader(bytes, at: pos)
        var end = min(bytes.count, (pos / sector + 2) * sector)
        if let len = r.u32(), len > 0, Int(len) <= WALFormat.maxBody {
            end = min(bytes.count, pos + WALFormat.frameSize + Int(len))
        }
        var start = pos
        while start < end {
            let sectorEnd = min(bytes.count, (start / sector + 1) * sector)
            if bytes[start..<sectorEnd].allSatisfy({ $0 == 0 }) { return true }
            start = sectorEnd
        }
        return false
    }

    /// Whether intact records follow one another from `start` to the end of the file (or to
    /// nothing but zeros).
    func chainReachesEnd(_ bytes: [UInt8], from start: Int) -> Bool {
        var p = start
        while p < bytes.count {
            guard case .record(let length, _) = parseRecord(bytes, at: p) else {
                return bytes[p...].allSatisfy { $0 == 0 }
            }
            p += length
        }
        return true
    }
}

/// Parses the record at `pos` of `bytes`: framing, checksum and what replay needs of the body.
/// Accepts exactly what ``WALFormat/decode(_:)`` accepts.
func parseRecord(_ bytes: [UInt8], at pos: Int) -> FileLogStorage.ParseOutcome {
    guard pos >= 0, bytes.count - pos >= WALFormat.frameSize else { return .damaged }
    let len = Int(le32(bytes, pos))
    let start = pos + WALFormat.frameSize
    guard len > 0, len <= WALFormat.maxBody, len <= bytes.count - start else { return .damaged }
    guard CRC32C.checksum(bytes, start..<(start + len)) == le32(bytes, pos + 4) else { return .damaged }
    switch bytes[start] {
    case WALFormat.RecordType.entry.rawValue:
        guard len >= 18, LogEntry.Kind(rawValue: bytes[start + 17]) != nil else { return .unknownContent }
        return .record(
            WALFormat.frameSize + len,
            .entry(index: LogIndex(rawValue: le64(bytes, start + 9)), term: Term(rawValue: le64(bytes, start + 1))))
    case WALFormat.RecordType.hardState.rawValue:
        guard len == 25 else { return .unknownContent }
        let h = HardState(
            term: Term(rawValue: le64(bytes, start + 1)), vote: NodeID(rawValue: le64(bytes, start + 9)),
            commit: LogIndex(rawValue: le64(bytes, start + 17)))
        return .record(WALFormat.frameSize + len, .hardState(h))
    case WALFormat.RecordType.base.rawValue:
        guard len >= 22 else { return .unknownContent }
        let n = Int(le32(bytes, start + 18))
        guard len == 22 + 8 * n else { return .unknownContent }
        let voters = (0..<n).map { NodeID(rawValue: le64(bytes, start + 22 + 8 * $0)) }
        return .record(
            WALFormat.frameSize + len,
            .base(
                index: LogIndex(rawValue: le64(bytes, start + 1)), term: Term(rawValue: le64(bytes, start + 9)),
                reset: bytes[start + 17] != 0, conf: ConfState(voters: voters)))
    default:
        return .unknownContent
    }
}

/// The little-endian `UInt32` at `at` (the caller checked the bounds).
@inline(__always) func le32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
}

/// The little-endian `UInt64` at `at` (the caller checked the bounds).
@inline(__always) func le64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}
