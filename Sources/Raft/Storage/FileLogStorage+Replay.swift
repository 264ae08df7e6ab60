extension FileLogStorage {
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
    case WALFormat.RecordType.membershipBase.rawValue:
        guard len >= 18, let conf = try? ConfState(decoding: bytes[(start + 18)..<(start + len)]) else { return .unknownContent }
        return .record(
            WALFormat.frameSize + len,
            .base(
                index: LogIndex(rawValue: le64(bytes, start + 1)), term: Term(rawValue: le64(bytes, start + 9)),
                reset: bytes[start + 17] != 0, conf: conf))
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
