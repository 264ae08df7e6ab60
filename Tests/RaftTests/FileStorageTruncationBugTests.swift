import Foundation
import Raft
import Testing

/// Regression test for a bug found while writing the SIGKILL crash test (CrashKillTests.swift),
/// fixed in `FileLogStorage.recover`.
///
/// Recovery skips every entry record at or below the compaction point (`e.index <= base.index`).
/// But an entry record also *truncates* the log: an append at an earlier index replaces every
/// later entry. When such a replacing batch lies entirely at or below the compaction point that
/// was recorded after it, recovery skips it, and the entries it had removed (above the
/// compaction point, still in the segment) come back after a restart: `lastIndex()` and
/// `term(at:)` report entries that were durably overwritten.
///
/// Raft hits this on a follower: it holds uncommitted entries 1...100 of term 1; a new leader
/// (term 2) overwrites from 50 and its log ends at 80; the follower applies up to 80, snapshots
/// and compacts at 80; it restarts before the next entry (81) arrives. After the restart it
/// claims to hold entries 81...100 of term 1, which no longer exist.
///
/// The fix: when recovery replays an entry at or below the compaction point it drops every
/// entry loaded so far, since everything after it in log order was replaced.
@Suite("File log storage: truncation below the compaction point")
struct FileStorageTruncationBugTests {
    @Test func entriesRemovedByAnAppendAtOrBelowTheCompactionPointStayRemovedAfterReopen() throws {
        let dir = TempDirectory()
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1])
            try s.append((1...100).map { entry($0, term: 1) })
            try s.sync()
            // Overwrite from 50: the log is now 1...49 of term 1 and 50...80 of term 2.
            try s.append((50...80).map { entry($0, term: 2) })
            try s.sync()
            #expect(s.lastIndex() == 80)
            try s.createSnapshot(at: 80, data: [1, 2, 3])
            try s.compact(upTo: 80)
            #expect(s.firstIndex() == 81)
            #expect(s.lastIndex() == 80)
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1])
        // Before the fix: lastIndex() == 100 and term(at: 81) == 1, the overwritten entries.
        #expect(s.lastIndex() == 80)
        #expect(try s.term(at: 80) == 2)
        #expect(throws: RaftError.self) { try s.term(at: 81) }
    }
}
