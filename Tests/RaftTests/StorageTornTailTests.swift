import RaftTestKit
import Testing

@testable import Raft

/// Regression tests for the torn-tail analysis of recovery (review finding: a vote rolled back
/// by the lost-sector rule).
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
}
