extension FileLogStorage {
    struct ParsedRecord {
        var offset: Int
        var length: Int
        var record: WALFormat.Record
    }

    /// Rebuilds the in-memory index from the segments and reconciles it with the snapshots.
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
        var parsed: [(segment: Segment, records: [ParsedRecord])] = []
        for (k, f) in found.enumerated() {
            let isLast = k == found.count - 1
            let path = joinPath(walDirectory, f.name)
            let file = try fs.open(path, create: false)
            let bytes = try file.read(at: 0, count: try file.size())
            // A segment that never got past its header (or not even that): a crash while
            // starting it. Nothing in it was ever reported durable.
            if isLast && isUnfinishedSegment(bytes, seq: f.seq) {
                file.close()
                repairs.append(.removeSegment(path: path))
                recovery.removedEmptySegment = f.name
                continue
            }
            try checkHeader(bytes, seq: f.seq, path: path)
            var records: [ParsedRecord] = []
            var pos = WALFormat.headerSize
            while pos < bytes.count {
                switch parseRecord(bytes, at: pos) {
                case .record(let length, let record):
                    records.append(ParsedRecord(offset: pos, length: length, record: record))
                    pos += length
                    continue
                case .unknownContent:
                    throw RaftError(
                        .corruption,
                        "log segment \(path) at offset \(pos): record has a valid checksum but content this library does not know; refusing to start")
                case .damaged:
                    break
                }
                if isLast && bytes[pos...].allSatisfy({ $0 == 0 }) {
                    // Zeros written ahead of the records (preallocation), or an unsynced
                    // extension: the log ends here, nothing was damaged.
                    break
                }
                if isLast && isTornTail(bytes, at: pos) {
                    repairs.append(.truncate(file: file, at: pos))
                    recovery.tailFile = path
                    recovery.tailOffset = pos
                    recovery.tailBytes = bytes.count - pos
                    break
                }
                throw RaftError(
                    .corruption,
                    "log segment \(path) at offset \(pos): record failed its checksum or framing; refusing to start rather than drop data after it")
            }
            let size = min(pos, bytes.count)
            let cut = recovery.tailFile == path
            parsed.append((Segment(seq: f.seq, path: path, file: file, size: size, filled: cut ? size : bytes.count, maxIndex: .zero), records))
        }
        pendingRepairs = repairs

        if parsed.isEmpty {
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

        // A snapshot install (a reset record) drops every entry written before it, so replay
        // starts at the last one. From there the compaction point only moves forward and every
        // segment starts with a copy of it: the highest base record is the current one, and
        // every live entry lies above it, contiguous, in segments that still exist.
        var lastReset: (segment: Int, record: Int)?
        for (k, p) in parsed.enumerated() {
            for (j, r) in p.records.enumerated() {
                if case .base(_, _, true, _) = r.record { lastReset = (k, j) }
            }
        }
        func live(_ k: Int, _ j: Int) -> Bool {
            guard let lr = lastReset else { return true }
            return k > lr.segment || (k == lr.segment && j >= lr.record)
        }
        var finalBase: (index: LogIndex, term: Term, conf: ConfState)?
        for (k, p) in parsed.enumerated() {
            for (j, r) in p.records.enumerated() where live(k, j) {
                if case .base(let index, let term, _, let c) = r.record, finalBase == nil || index >= finalBase!.index {
                    finalBase = (index, term, c)
                }
            }
        }
        guard let fb = finalBase else {
            throw RaftError(.corruption, "no compaction record found in \(walDirectory): the segments are not from this library")
        }
        base = (fb.index, fb.term)
        conf = fb.conf
        locations = []
        for (k, p) in parsed.enumerated() {
            var seg = p.segment
            for (j, r) in p.records.enumerated() {
                switch r.record {
                case .entry(let e):
                    if e.index > seg.maxIndex { seg.maxIndex = e.index }
                    if !live(k, j) { continue }
                    if e.index <= base.index {
                        // Compacted now; but when it was written it replaced every later entry,
                        // so nothing loaded so far survives it.
                        locations.removeAll()
                        continue
                    }
                    let last = lastIndex()
                    if e.index <= last {
                        locations.removeSubrange((base.index.distance(to: e.index) - 1)...)
                    } else if e.index != last + 1 {
                        throw RaftError(
                            .corruption,
                            "log segment \(seg.path) at offset \(r.offset): entry \(e.index) follows entry \(last); entries are missing")
                    }
                    locations.append(Location(seq: seg.seq, offset: r.offset, length: r.length, term: e.term))
                case .hardState(let h):
                    hard = h
                case .base:
                    break
                }
            }
            parsed[k].segment = seg
        }
        segments = parsed.map(\.segment)

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
        segments.last?.file.reserve(options.segmentBytes + (1 << 20))
        try snapshotter.removeTemporaryFiles()
        recovery.removedTemporaryFiles = snapshotter.removedTemporaryFiles
        try adopt(snapshot)
        recovery.segments = segments.count
        recovery.entries = locations.count
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

    func headerIsValid(_ bytes: [UInt8], seq: UInt64) -> Bool {
        guard bytes.count >= WALFormat.headerSize else { return false }
        return Array(bytes[0..<WALFormat.headerSize]) == WALFormat.header(seq: seq)
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

    enum ParseOutcome {
        case record(Int, WALFormat.Record)
        /// Framing and checksum are fine but the content is unknown: not damage, refuse.
        case unknownContent
        case damaged
    }

    /// Parses the record at `pos`.
    func parseRecord(_ bytes: [UInt8], at pos: Int) -> ParseOutcome {
        var r = ByteReader(bytes, at: pos)
        guard let len = r.u32(), let crc = r.u32(), len > 0, Int(len) <= WALFormat.maxBody,
            pos + WALFormat.frameSize + Int(len) <= bytes.count
        else { return .damaged }
        let body = (pos + WALFormat.frameSize)..<(pos + WALFormat.frameSize + Int(len))
        guard CRC32C.checksum(bytes, body) == crc else { return .damaged }
        guard let record = WALFormat.decode(bytes[body]) else { return .unknownContent }
        return .record(WALFormat.frameSize + Int(len), record)
    }

    /// Whether a segment holds nothing but (part of) its header and zeros: a crash while
    /// creating it, before any record arrived.
    func isUnfinishedSegment(_ bytes: [UInt8], seq: UInt64) -> Bool {
        let header = WALFormat.header(seq: seq)
        for (i, b) in bytes.enumerated() {
            if b == 0 { continue }
            if i < header.count && b == header[i] { continue }
            return false
        }
        return true
    }

    /// Whether the damage at `pos` is what an interrupted write leaves at the end of a file:
    /// zeros, a record cut short, or a final record whose contents never fully arrived
    /// (followed by nothing, or by zeros only). Anything else (damage followed by more data) is
    /// corruption.
    func isTornTail(_ bytes: [UInt8], at pos: Int) -> Bool {
        if bytes[pos...].allSatisfy({ $0 == 0 }) { return true }
        if overlapsLostSector(bytes, at: pos) { return true }
        var r = ByteReader(bytes, at: pos)
        guard let len = r.u32(), r.u32() != nil else { return true }
        // Writes arrive in order and the length comes first: an interrupted write never leaves
        // a length this library cannot have written.
        if len == 0 || Int(len) > WALFormat.maxBody { return false }
        let end = pos + WALFormat.frameSize + Int(len)
        if end < bytes.count {
            // The last record, whole in size but not in content: torn only if only zeros follow.
            return bytes[end...].allSatisfy { $0 == 0 }
        }
        // The record runs past the end of the file. A damaged length field looks like that too,
        // so look for the records that would follow it: an unbroken chain of intact records
        // from somewhere after the damage to the end of the file means the damage was not the
        // end of the writes. (A single record-shaped run of bytes inside a torn entry's data is
        // not enough: the chain must reach the end.)
        var p = pos + 1
        while p + WALFormat.frameSize < bytes.count {
            if case .record = parseRecord(bytes, at: p), chainReachesEnd(bytes, from: p) { return false }
            p += 1
        }
        return true
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
