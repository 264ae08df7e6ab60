extension FileLogStorage {
    /// Rebuilds the in-memory index from the segments and reconciles it with the snapshots.
    ///
    /// The segments are streamed, oldest first, record by record, through a window of 1 MiB
    /// (``SegmentScanner``); an entry's payload is checksummed but never decoded or kept, so
    /// what recovery holds afterwards is the index alone (a ``LocationTable``), as after
    /// writing.
    func recover(voters: [NodeID]) throws(RaftError) {
        var found: [(seq: UInt64, name: String)] = []
        for name in try fs.contentsOfDirectory(walDirectory) {
            if let seq = WALFormat.parseSegmentName(name) { found.append((seq, name)) } else { recovery.unknownFiles.append(name) }
        }
        found.sort { $0.seq < $1.seq }
        // The format version of the newest segment read (a brand-new log writes the current one).
        var newestVersion = WALFormat.version
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
                newestVersion = try checkHeader(scanner.window, seq: f.seq, path: path)
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
                            file: path, offset: pos, bytes: scanner.size - pos, reason: reason, entries: cut.entries, hardStates: cut.hardStates,
                            complete: cut.complete)
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
        if let tail = recovery.truncatedTail, let kept = Self.restoredHardState(surviving: hard, cut: tail.hardStates) {
            hard = kept
            recovery.restoredHardState = kept
        }
        locations = replay.locations
        replay = Replay()  // its reference to the index goes, so the next append does not copy it

        // The voters given only bootstrap a new directory. An existing one holds its own
        // membership, which changes over time (membership entries, snapshots), so the ones given
        // are checked only for a plain mistake: a directory of a cluster none of them was ever
        // part of at its base.
        if !voters.isEmpty && !conf.isEmpty && Set(voters).isDisjoint(with: conf.members) {
            throw RaftError(
                .invalidConfiguration,
                "\(directory) holds the log of a cluster with voters \(conf.voters.map(\.description).joined(separator: ",")), not \(ConfState(voters: voters).voters.map(\.description).joined(separator: ",")): wrong directory or wrong cluster")
        }
        if conf.isEmpty { conf = ConfState(voters: voters) }
        durableLastIndex = lastIndex()
        cacheStart = lastIndex() + 1
        let snapshot = try chooseSnapshot()
        // Every check passed: now repair.
        try runPendingRepairs()
        if recovery.restoredHardState != nil {
            // The cut took the records that held it: write it again, synced just below.
            WALFormat.encodeHardState(&pending, hard)
            try writeBuffered()
        }
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
        if newestVersion < WALFormat.version && !segments.isEmpty {
            // Records of this version never go into a segment labelled with an older one (a
            // library of that version would take them for damage): start a new segment.
            try roll()
        }
        if hard.commit > lastIndex() {
            // Committed entries that are gone: the log lost records at its end (a cut at a
            // record boundary leaves no other trace). The core clamps its commit index to the
            // log and catches up from the leader.
            recovery.lostCommittedEntries = (lastIndex() + 1)...hard.commit
        }
        recovery.segments = segments.count
        recovery.entries = locations.count
    }

    /// The hard state to open with when a torn tail cut hard-state records: recovery never
    /// lowers the term or the vote. A cut taken for a torn write may have dropped synced
    /// records (the lost-sector rule cuts everything after a record that reaches into a zeroed
    /// sector, and damage by the disk can look like that), and a node that forgot a term or a
    /// vote it had made durable could vote twice in one term (§5.2, §5.4.1). So the highest
    /// term among the intact hard states in the cut bytes is kept, with the vote recorded in
    /// it, when it is above the surviving term (or equal to it with a vote where the surviving
    /// one has none). The commit index stays the surviving one: a cut hard state's commit
    /// index speaks of the log as it was when it was written, which the damaged record (of
    /// unknown content: it may have replaced entries the log still holds) took part in, so it
    /// cannot vouch for the entries that survive. Commit indexes need not be durable; the
    /// leader sends it again. `nil` when the surviving hard state stands.
    static func restoredHardState(surviving: HardState, cut: [HardState]) -> HardState? {
        var best = surviving
        for h in cut where h.term > best.term || (h.term == best.term && best.vote == .none && h.vote != .none) {
            best = HardState(term: h.term, vote: h.vote, commit: surviving.commit)
        }
        return best == surviving ? nil : best
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

    /// Checks a segment header; returns its format version.
    @discardableResult
    func checkHeader(_ bytes: [UInt8], seq: UInt64, path: String) throws(RaftError) -> UInt16 {
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
        if !WALFormat.readableVersions.contains(version) {
            throw RaftError(
                .unsupportedFormat,
                "log segment \(path) has format version \(version); this library reads versions \(WALFormat.readableVersions.lowerBound) to \(WALFormat.readableVersions.upperBound): open it with the library version that wrote it")
        }
        guard storedSeq == seq else {
            throw RaftError(.corruption, "log segment \(path) at offset 0: header says segment \(storedSeq), the name says \(seq)")
        }
        return version
    }
}
