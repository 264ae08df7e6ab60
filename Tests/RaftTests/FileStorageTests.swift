import Foundation
import Raft
import RaftTestKit
import Testing

/// A fresh temporary directory, removed when the test ends.
final class TempDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "swift-raft-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func entry(_ i: UInt64, term: UInt64, size: Int = 8) -> LogEntry {
    var data = [UInt8](repeating: 0, count: size)
    for k in 0..<size { data[k] = UInt8(truncatingIfNeeded: i &* 31 &+ term &* 7 &+ UInt64(k)) }
    return LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: i), data: data)
}

@Suite("File log storage")
struct FileStorageTests {
    /// A snapshot written as a stream (beginSnapshot, writes, finishSnapshot) reads back as a
    /// stream after a reopen, across the file's chunk boundaries, in pieces of any size.
    @Test func snapshotStreamsInAndOut() throws {
        let dir = TempDirectory()
        let data = (0..<(2_500_000)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            try s.append((1...10).map { entry($0, term: 1) })
            try s.sync()
            let out = try s.beginSnapshot(at: 8, confState: nil)
            var k = 0
            while k < data.count {
                try out.write(data[k..<min(data.count, k + 100_003)])
                k += 100_003
            }
            #expect(out.count == data.count)
            #expect(s.snapshotMetadata().index == .zero, "nothing visible before finishing")
            try s.finishSnapshot(out)
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        #expect(s.snapshotMetadata().index == 8)
        let input = try s.openSnapshot()
        var read: [UInt8] = []
        while true {
            let piece = try input.read(upTo: 777_777)
            if piece.isEmpty { break }
            read += piece
        }
        #expect(read == data)
        #expect(throws: RaftError.self) { try input.read(exactly: 1) }
        let again = try s.openSnapshot()
        #expect(try again.read(exactly: 5) == Array(data[0..<5]))
        #expect(try again.readAll() == Array(data[5...]))
    }

    @Test func appendSyncReopen() throws {
        let dir = TempDirectory()
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            try s.append((1...100).map { entry($0, term: 1) })
            try s.setHardState(HardState(term: 1, vote: 2, commit: 90))
            try s.sync()
            #expect(s.durableLastIndex == 100)
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        let (hs, conf) = try s.initialState()
        #expect(hs == HardState(term: 1, vote: 2, commit: 90))
        #expect(conf.voters == [1, 2, 3])
        #expect(s.lastIndex() == 100)
        #expect(try s.entries(in: 1..<101, maxBytes: .max) == (1...100).map { entry($0, term: 1) })
        #expect(s.recovery.truncatedTail == nil)
    }

    @Test func truncatesConflictingSuffixAcrossReopen() throws {
        let dir = TempDirectory()
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1])
            try s.append((1...10).map { entry($0, term: 1) })
            try s.sync()
            try s.append((6...8).map { entry($0, term: 2) })
            try s.sync()
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1])
        #expect(s.lastIndex() == 8)
        #expect(try s.term(at: 5) == 1)
        #expect(try s.term(at: 6) == 2)
        #expect(try s.entries(in: 6..<9, maxBytes: .max) == (6...8).map { entry($0, term: 2) })
    }

    @Test func segmentsRollAndCompactionDeletesWholeSegments() throws {
        let dir = TempDirectory()
        var options = FileLogStorageOptions()
        options.segmentBytes = 4096
        options.cachedEntries = 16
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1], options: options)
            for batch in 0..<20 {
                try s.append((UInt64(batch * 10 + 1)...UInt64(batch * 10 + 10)).map { entry($0, term: 1, size: 100) })
                try s.sync()
            }
            let before = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").count
            #expect(before > 3)
            try s.createSnapshot(at: 150, data: Array("state at 150".utf8))
            try s.compact(upTo: 140)
            let after = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").count
            #expect(after < before)
            #expect(s.firstIndex() == 141)
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1], options: options)
        #expect(s.firstIndex() == 141)
        #expect(s.lastIndex() == 200)
        #expect(try s.term(at: 140) == 1)
        #expect(try s.entries(in: 141..<201, maxBytes: .max) == (141...200).map { entry($0, term: 1, size: 100) })
        let snap = try s.snapshot()
        #expect(snap.metadata.index == 150)
        #expect(snap.data == Array("state at 150".utf8))
    }

    @Test func installSnapshotResetsTheLog() throws {
        let dir = TempDirectory()
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            try s.append((1...5).map { entry($0, term: 1) })
            try s.sync()
            let meta = SnapshotMetadata(index: 50, term: 3, confState: ConfState(voters: [1, 2, 3]))
            try s.applySnapshot(Snapshot(metadata: meta, data: [1, 2, 3]))
            try s.append((51...52).map { entry($0, term: 3) })
            try s.sync()
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        #expect(s.firstIndex() == 51)
        #expect(s.lastIndex() == 52)
        #expect(try s.term(at: 50) == 3)
        #expect(try s.snapshot().data == [1, 2, 3])
        #expect(s.currentHardState.commit >= 50)
    }

    @Test func wrongClusterIsRefused() throws {
        let dir = TempDirectory()
        do { try FileLogStorage(directory: dir.path, voters: [1, 2, 3]).close() }
        do {
            _ = try FileLogStorage(directory: dir.path, voters: [4, 5, 6])
            Issue.record("a directory of another cluster was opened")
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test func coreRunsOnFileStorage() throws {
        let dir = TempDirectory()
        let s = try FileLogStorage(directory: dir.path, voters: [1])
        var core = try RaftCore(configuration: RaftConfiguration(id: 1), storage: s)
        try core.campaign()
        for k in 0..<10 { try core.propose([UInt8(k)]) }
        var applied: [LogEntry] = []
        while core.hasReady {
            let rd = try core.ready()
            try s.persist(rd)
            applied += rd.committedEntries
            try core.advance(rd)
        }
        #expect(applied.filter { $0.kind == .command }.count == 10)
        s.close()
        let reopened = try FileLogStorage(directory: dir.path, voters: [1])
        let again = try RaftCore(configuration: RaftConfiguration(id: 1), storage: reopened)
        #expect(again.term == core.term)
        #expect(again.lastIndex == core.lastIndex)
    }
}
