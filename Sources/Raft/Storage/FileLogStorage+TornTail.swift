extension FileLogStorage {
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
        switch intactRecordReachesEnd(bytes, after: pos) {
        case .some(true), .none: return nil
        case .some(false): return .incompleteRecord
        }
    }

    /// The most bytes one search of the torn-tail analysis checksums, for `rest` bytes after
    /// the damage: a small multiple of them, so that opening stays linear in the segment's
    /// size whatever the damage holds.
    static func tornTailWorkBound(_ rest: Int) -> Int { 2 * rest + (1 << 16) }

    /// The length of the record at `p` if its frame and type make it worth checksumming:
    /// a known type with a length that type can have (a hard state 25 bytes, a compaction
    /// record 22 plus 8 per voter, an entry at least 18 with a known kind), inside the file.
    /// Exactly the checks ``parseRecord(_:at:)`` makes besides the checksum, done first
    /// because they are cheap.
    func plausibleRecordLength(_ bytes: [UInt8], at p: Int) -> Int? {
        let start = p + WALFormat.frameSize
        guard start < bytes.count else { return nil }
        let len = Int(le32(bytes, p))
        guard len > 0, len <= WALFormat.maxBody, len <= bytes.count - start else { return nil }
        switch bytes[start] {
        case WALFormat.RecordType.entry.rawValue:
            guard len >= 18, LogEntry.Kind(rawValue: bytes[start + 17]) != nil else { return nil }
        case WALFormat.RecordType.hardState.rawValue:
            guard len == 25 else { return nil }
        case WALFormat.RecordType.base.rawValue:
            guard len >= 22, len == 22 + 8 * Int(le32(bytes, start + 18)) else { return nil }
        default:
            return nil
        }
        return len
    }

    /// Whether an unbroken chain of intact records runs from some offset after `pos` to the
    /// end of the file (or to nothing but zeros); `nil` if the search gave up at its work
    /// bound (which the caller takes for corruption: nothing is cut).
    ///
    /// Such a chain exists exactly when a single intact record after `pos` ends where only
    /// zeros (or nothing) follow: the last record of any such chain is one, and is a chain
    /// itself. So no chain is followed: each offset is tried once, the cheap checks first, and
    /// only a record that would end in that zero run (or at the end) is checksummed.
    func intactRecordReachesEnd(_ bytes: [UInt8], after pos: Int) -> Bool? {
        var zeros = bytes.count  // bytes[zeros...] are all zero
        while zeros > pos + 1 && bytes[zeros - 1] == 0 { zeros -= 1 }
        let bound = Self.tornTailWorkBound(bytes.count - pos)
        var checked = 0
        defer { tornTailChecksummedBytes += checked }
        var p = pos + 1
        while p < zeros {
            if let len = plausibleRecordLength(bytes, at: p), p + WALFormat.frameSize + len >= zeros {
                if checked + len > bound { return nil }
                checked += len
                if case .record = parseRecord(bytes, at: p) { return true }
            }
            p += 1
        }
        return false
    }

    /// The entries (lowest and highest index) and hard states of the intact records after the
    /// damaged one at `pos`: what a cut there drops besides the damaged record. Found by
    /// trying every offset after `pos`, and following each record found to the next. The
    /// cheap checks come first; once the checksummed bytes reach the work bound, only
    /// hard-state records (25 bytes each) are still looked for, and `complete` is false.
    func intactRecords(_ bytes: [UInt8], after pos: Int) -> (entries: ClosedRange<LogIndex>?, hardStates: [HardState], complete: Bool) {
        var low: LogIndex?
        var high: LogIndex?
        var hardStates: [HardState] = []
        let bound = Self.tornTailWorkBound(bytes.count - pos)
        var checked = 0
        var complete = true
        defer { tornTailChecksummedBytes += checked }
        var p = pos + 1
        while p + WALFormat.frameSize < bytes.count {
            guard let len = plausibleRecordLength(bytes, at: p) else {
                p += 1
                continue
            }
            if len != 25 && checked + len > bound {
                complete = false
                p += 1
                continue
            }
            checked += len
            guard case .record(let length, let record) = parseRecord(bytes, at: p) else {
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
        if let low, let high { return (low...high, hardStates, complete) }
        return (nil, hardStates, complete)
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
}
