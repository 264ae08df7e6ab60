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
