import RaftTestKit
import Testing

@testable import Raft

/// Regression tests for the torn-tail analysis of recovery (review findings: a vote rolled back
/// by the lost-sector rule; the analysis taking cubic time on garbage).
@Suite struct StorageTornTailTests {
    /// The offset of the record of entry `index` in `bytes` (a segment written in order).
    static func offsetOfEntry(_ index: UInt64, in b: [UInt8]) -> Int? {
        var pos = WALFormat.headerSize
        while pos + 8 < b.count {
            let len = Int(le32(b, pos))
            if len == 0 { break }
            if b[pos + 8] == WALFormat.RecordType.entry.rawValue, le64(b, pos + 8 + 9) == index { return pos }
            pos += 8 + len
        }
        return nil
    }

    /// One flipped bit in a synced entry whose payload holds a whole zero sector: the lost-sector
    /// rule cuts it with every synced record after it, two hard states (term 2, vote 2) and
    /// (term 3, vote 3) among them. Before the fix the node opened with (term 1, vote 1) and
    /// could vote again in terms 2 and 3; now it keeps term 3 and its vote, durably.
    @Test func cutTailNeverLowersTermOrVote() throws {
        let fs = SimulatedFileSystem()
        var s: FileLogStorage? = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        try s!.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [1, 2, 3]) })
        try s!.setHardState(HardState(term: 1, vote: 1, commit: 0))
        try s!.sync()
        try s!.append([LogEntry(term: 1, index: 6, data: [UInt8](repeating: 0, count: 2048))])
        try s!.sync()
        try s!.append((7...10).map { LogEntry(term: 2, index: LogIndex(rawValue: $0), data: [4, 5, 6]) })
        try s!.setHardState(HardState(term: 2, vote: 2, commit: 10))
        try s!.sync()
        try s!.setHardState(HardState(term: 3, vote: 3, commit: 10))
        try s!.sync()
        s!.close()
        s = nil
        let seg = "/d/wal/" + (try fs.contentsOfDirectory("/d/wal")).sorted()[0]
        var b = try #require(fs.contents(seg))
        let at = try #require(Self.offsetOfEntry(6, in: b))
        b[at + 4] ^= 0x01  // one flipped bit in entry 6's stored checksum
        fs.setContents(seg, b)

        var t: FileLogStorage? = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        let tail = try #require(t!.recovery.truncatedTail)
        #expect(tail.reason == .lostSector)
        #expect(tail.entries == 7...10)
        #expect(tail.hardStates.map(\.term) == [2, 3])
        #expect(t!.lastIndex() == 5)
        let (hs, _) = try t!.initialState()
        #expect(hs.term == 3 && hs.vote == 3)
        // The commit index is not taken from the cut records: the damaged record may have
        // replaced entries the log still holds.
        #expect(hs.commit == 0)
        #expect(t!.recovery.restoredHardState == hs)
        t!.close()
        t = nil

        // Durable: the cut records are gone from the file, the restored hard state is not.
        let u = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        defer { u.close() }
        #expect(u.recovery.truncatedTail == nil)
        let (again, _) = try u.initialState()
        #expect(again.term == 3 && again.vote == 3)
    }

    /// A cut tail whose hard states are not above the surviving one changes nothing.
    @Test func cutTailWithOlderHardStateKeepsTheSurvivingOne() throws {
        let fs = SimulatedFileSystem()
        var s: FileLogStorage? = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        try s!.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [1, 2, 3]) })
        try s!.setHardState(HardState(term: 4, vote: 2, commit: 3))
        try s!.sync()
        try s!.append([LogEntry(term: 4, index: 6, data: [UInt8](repeating: 0, count: 2048))])
        try s!.append([LogEntry(term: 4, index: 7, data: [9])])
        try s!.setHardState(HardState(term: 4, vote: 2, commit: 7))
        try s!.sync()
        s!.close()
        s = nil
        let seg = "/d/wal/" + (try fs.contentsOfDirectory("/d/wal")).sorted()[0]
        var b = try #require(fs.contents(seg))
        let at = try #require(Self.offsetOfEntry(6, in: b))
        b[at + 4] ^= 0x01
        fs.setContents(seg, b)
        let t = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        defer { t.close() }
        #expect(t.recovery.truncatedTail?.reason == .lostSector)
        #expect(t.recovery.restoredHardState == nil)
        let (hs, _) = try t.initialState()
        #expect(hs == HardState(term: 4, vote: 2, commit: 3))
    }

    /// A damaged length followed by 1 MiB of random bytes. Before the fix the analysis tried
    /// every offset and checksummed up to the rest of the file at each (and followed chains
    /// from each): tens of MiB here, 0.31 s in a debug build, and cubic growth (141 s at 8 MiB,
    /// about 20 h for a 64 MiB segment). Now the work is bounded by a small multiple of the
    /// bytes after the damage. Asserts the bytes checksummed, not the time.
    @Test func garbageTailWorkIsLinear() throws {
        let garbage = 1 << 20
        let fs = SimulatedFileSystem()
        let s = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        try s.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [1, 2, 3]) })
        try s.sync()
        s.close()
        let seg = "/d/wal/" + (try fs.contentsOfDirectory("/d/wal")).sorted()[0]
        var b = try #require(fs.contents(seg))
        var g = SeededGenerator(seed: 7)
        b += [0xFF, 0xFF, 0xFF, 0x3F]  // a damaged length: 1 GiB - 1
        for _ in 0..<garbage { b.append(UInt8.random(in: 0...255, using: &g)) }
        fs.setContents(seg, b)
        let t = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        defer { t.close() }
        #expect(t.recovery.truncatedTail?.reason == .incompleteRecord)
        #expect(t.lastIndex() == 5)
        #expect(t.tornTailChecksummedBytes <= garbage, "checksummed \(t.tornTailChecksummedBytes) bytes for \(garbage) bytes of garbage")
    }

    /// The worst case for the searches: after a damaged length, 64 KiB of record frames that
    /// pass every cheap check and each claim to run exactly to the end of the file, so every
    /// one would be checksummed over the rest of the file (quadratic work). Each search stops
    /// at its bound; the chain search cannot rule out intact records after the damage, so the
    /// open refuses with a corruption error (nothing is cut), and the report's search says it
    /// was not complete.
    @Test func searchesStopAtTheirWorkBound() throws {
        let fs = SimulatedFileSystem()
        let s = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs)
        try s.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [1, 2, 3]) })
        try s.sync()
        s.close()
        let seg = "/d/wal/" + (try fs.contentsOfDirectory("/d/wal")).sorted()[0]
        let good = try #require(fs.contents(seg))
        let frames = (64 << 10) / 26
        var tail: [UInt8] = [0xFF, 0xFF, 0xFF, 0x3F]  // a damaged length
        let first = good.count + tail.count
        let total = first + 26 * frames
        for k in 0..<frames {
            let p = first + 26 * k
            let len = UInt32(total - p - 8)
            for i in 0..<4 { tail.append(UInt8(truncatingIfNeeded: len >> (8 * UInt32(i)))) }
            tail += [0, 0, 0, 0]  // a wrong checksum
            tail.append(WALFormat.RecordType.entry.rawValue)
            tail += [UInt8](repeating: 7, count: 16)  // term and index
            tail.append(LogEntry.Kind.command.rawValue)
        }
        let b = good + tail
        #expect(b.count == total)
        fs.setContents(seg, b)
        #expect(throws: RaftError.self) { _ = try FileLogStorage(directory: "/d", voters: [1, 2, 3], fileSystem: fs) }

        let probe = try FileLogStorage(directory: "/e", voters: [1, 2, 3], fileSystem: fs)
        defer { probe.close() }
        let pos = good.count
        let bound = FileLogStorage.tornTailWorkBound(b.count - pos)
        probe.tornTailChecksummedBytes = 0
        #expect(probe.intactRecordReachesEnd(b, after: pos) == nil)
        #expect(probe.tornTailChecksummedBytes <= bound)
        probe.tornTailChecksummedBytes = 0
        let cut = probe.intactRecords(b, after: pos)
        #expect(!cut.complete && cut.entries == nil)
        #expect(probe.tornTailChecksummedBytes <= bound)
    }
}
