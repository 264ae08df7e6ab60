import Foundation
import RaftTestKit
import Testing

@testable import Raft

/// A ``FileSystem`` over the real one that records the largest single read.
final class ReadRecordingFileSystem: FileSystem {
    let base = PosixFileSystem()
    var largestRead = 0

    final class File: StorageFile {
        let inner: any StorageFile
        let owner: ReadRecordingFileSystem
        init(_ inner: any StorageFile, _ owner: ReadRecordingFileSystem) {
            self.inner = inner
            self.owner = owner
        }
        func size() throws(RaftError) -> Int { try inner.size() }
        func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8] {
            owner.largestRead = max(owner.largestRead, count)
            return try inner.read(at: offset, count: count)
        }
        func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError) { try inner.write(bytes, at: offset) }
        func sync() throws(RaftError) { try inner.sync() }
        func truncate(to size: Int) throws(RaftError) { try inner.truncate(to: size) }
        func close() { inner.close() }
        func tryLock() -> Bool { inner.tryLock() }
    }

    func createDirectory(_ path: String) throws(RaftError) { try base.createDirectory(path) }
    func contentsOfDirectory(_ path: String) throws(RaftError) -> [String] { try base.contentsOfDirectory(path) }
    func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile { File(try base.open(path, create: create), self) }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func remove(_ path: String) throws(RaftError) { try base.remove(path) }
    func rename(_ from: String, to: String) throws(RaftError) { try base.rename(from, to: to) }
    func syncDirectory(_ path: String) throws(RaftError) { try base.syncDirectory(path) }
}

@Suite("Storage recovery")
struct StorageRecoveryTests {
    /// Opening streams each segment through a window of at most 1 MiB instead of reading it
    /// whole (which, with every record decoded, held several times the index after a reopen).
    @Test func recoveryReadsSegmentsThroughABoundedWindow() throws {
        let dir = TempDirectory()
        var options = FileLogStorageOptions()
        options.segmentBytes = 16 << 20
        let payload = [UInt8](repeating: 0x5A, count: 128)
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1], options: options)
            for batch in 0..<40 {
                let first = UInt64(batch * 1000 + 1)
                try s.append((first..<(first + 1000)).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: payload) })
                try s.sync()
            }
            s.close()
        }
        let segment = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/wal").filter { $0.hasSuffix(".wal") }
        #expect(segment.count == 1)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: dir.path + "/wal/" + segment[0])[.size] as? Int)
        #expect(size > 4 << 20, "one segment of several MiB")
        let fs = ReadRecordingFileSystem()
        let s = try FileLogStorage(directory: dir.path, voters: [1], options: options, fileSystem: fs)
        #expect(s.lastIndex() == 40_000)
        #expect(s.recovery.entries == 40_000)
        #expect(fs.largestRead <= 1 << 20, "largest read \(fs.largestRead) bytes of a \(size)-byte segment")
        for i: LogIndex in [1, 2_047, 2_048, 2_049, 39_999, 40_000] {
            #expect(try s.entries(in: i..<(i + 1), maxBytes: .max) == [LogEntry(term: 1, index: i, data: payload)])
        }
        s.close()
    }

    /// The location table against a plain array: appends across chunk boundaries, suffixes
    /// replaced, prefixes compacted, everything dropped.
    @Test func locationTableMatchesAnArray() {
        var seed: UInt64 = 0x5EED
        func next(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(max(n, 1)))
        }
        var table = FileLogStorage.LocationTable()
        var model: [FileLogStorage.Location] = []
        var counter = 0
        for step in 0..<20_000 {
            switch next(10) {
            case 0...5:
                for _ in 0..<(1 + next(3_000)) {
                    counter += 1
                    let l = FileLogStorage.Location(seq: UInt64(counter / 1000), offset: counter, length: counter % 77, term: Term(rawValue: UInt64(counter)))
                    table.append(l)
                    model.append(l)
                }
            case 6, 7:
                let keep = next(model.count + 1)
                table.removeSuffix(keeping: keep)
                model.removeSubrange(keep...)
            case 8:
                let drop = next(model.count + 1)
                table.removePrefix(drop)
                model.removeFirst(drop)
            default:
                if next(20) == 0 {
                    table.removeAll()
                    model.removeAll()
                }
            }
            guard table.count == model.count else {
                Issue.record("step \(step): count \(table.count), expected \(model.count)")
                return
            }
            for k in [0, model.count / 3, model.count / 2, model.count - 1] where k >= 0 && k < model.count {
                let (a, b) = (table[k], model[k])
                if a.offset != b.offset || a.term != b.term || a.seq != b.seq || a.length != b.length {
                    Issue.record("step \(step): position \(k) holds offset \(a.offset), expected \(b.offset)")
                    return
                }
            }
        }
        for k in model.indices where table[k].offset != model[k].offset {
            Issue.record("position \(k) differs at the end")
            return
        }
    }

    // MARK: Kept snapshots are fallbacks

    static func flipByte(inNewestSnapshotOf dir: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/snap").filter { $0.hasSuffix(".snap") }.sorted()
        let newest = try #require(names.last)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/snap/" + newest)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/snap/" + newest))
        return newest
    }

    /// With three snapshots kept (the default) and compaction a trail behind each snapshot (as
    /// the node does it), a damaged newest snapshot file leaves the next older one to start
    /// from, and the log from there on. (Before, compaction went past the older snapshots and
    /// the open refused to start.)
    @Test(arguments: [64 << 20, 4096])
    func damagedNewestSnapshotFallsBackToAnOlderKeptOne(segmentBytes: Int) throws {
        let dir = TempDirectory()
        var options = FileLogStorageOptions()
        options.segmentBytes = segmentBytes
        func state(_ i: UInt64) -> [UInt8] { Array("state at \(i)".utf8) }
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1], options: options)
            var next: UInt64 = 1
            for snap: UInt64 in [100, 200, 300, 400] {
                while next <= snap + 5 {
                    try s.append([entry(next, term: 1, size: 64)])
                    next += 1
                }
                try s.sync()
                try s.createSnapshot(at: LogIndex(rawValue: snap), data: state(snap))
                try s.compact(upTo: LogIndex(rawValue: snap - 10))
            }
            // Snapshots 200, 300 and 400 are kept: the log starts after the oldest.
            #expect(s.firstIndex() == 201)
            s.close()
        }
        let damaged = try Self.flipByte(inNewestSnapshotOf: dir.path)
        let s = try FileLogStorage(directory: dir.path, voters: [1], options: options)
        #expect(s.recovery.skippedSnapshots.count == 1)
        #expect(s.recovery.skippedSnapshots.first?.hasPrefix(damaged) == true)
        #expect(s.snapshotMetadata().index == 300)
        #expect(try s.snapshot().data == state(300))
        #expect(s.firstIndex() <= 301)
        #expect(s.lastIndex() == 405)
        #expect(try s.entries(in: 301..<406, maxBytes: .max) == (301...405).map { entry($0, term: 1, size: 64) })
        s.close()
    }

    /// The same through real nodes on file storage: node 1's newest snapshot file is damaged
    /// while the cluster is down; it restarts from the older one, replays the log behind it and
    /// catches up with the others.
    @Test func nodeRestartsFromAnOlderSnapshotWhenTheNewestIsDamaged() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("raft-fallback-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let views: [NodeID: KVView] = [1: KVView(), 2: KVView(), 3: KVView()]
        let h = NodeHarness<KVMachine>(
            make: { KVMachine(view: views[$0]!) },
            configure: { c in
                c.snapshotEvery = 10
                c.compactionTrail = 2
            }, openStorage: { id in try FileLogStorage(directory: "\(root)/\(id)", voters: [1, 2, 3]) })
        try h.startAll()
        for k in 0..<45 { _ = try await h.write("k\(k)=\(k)") }
        for id in h.ids {
            let status = try await h.waitFor(id) { $0.snapshotIndex >= 40 }
            #expect(status.snapshotIndex >= 40, "node \(id)")
        }
        let before = try await h.nodes[1]!.status()
        await h.stopAll()
        _ = try Self.flipByte(inNewestSnapshotOf: "\(root)/1")
        try h.startAll()
        let restarted = try await h.nodes[1]!.status()
        #expect(restarted.snapshotIndex < before.snapshotIndex, "started from an older snapshot")
        #expect(restarted.snapshotIndex >= 20)
        for k in 45..<50 { _ = try await h.write("k\(k)=\(k)") }
        let leader = try await h.electLeader()
        let target = try await h.nodes[leader]!.status().applied
        try await h.waitFor(1) { $0.applied >= target }
        #expect(views[1]?.values == views[leader]?.values)
        #expect(views[1]?.values.count == 50)
        #expect(h.failures.isEmpty, "\(h.failures)")
        await h.stopAll()
    }

    // MARK: lastIndex and durableLastIndex

    /// `lastIndex()` counts appends at once, `durableLastIndex` once synced; they agree after a
    /// sync and after opening. A process killed between a write and its sync leaves records in
    /// the page cache: the reopened storage counts them durable, so it must make them durable
    /// before a power loss can take them. (Before opening synced, a power loss after such a
    /// reopen lost entries the reopened storage had reported durable.)
    @Test(arguments: 0..<16)
    func lastIndexAndDurableLastIndex(seed: UInt64) throws {
        let fs = SimulatedFileSystem()
        let s = try FileLogStorage(directory: "/d", voters: [1], fileSystem: fs)
        try s.append((1...5).map { entry($0, term: 1) })
        #expect(s.lastIndex() == 5)
        #expect(s.durableLastIndex == 0)
        try s.sync()
        #expect(s.lastIndex() == 5 && s.durableLastIndex == 5)
        try s.append((6...10).map { entry($0, term: 1) })
        #expect(s.lastIndex() == 10 && s.durableLastIndex == 5)
        // A conflicting suffix: durable only up to before it until the next sync.
        try s.append((4...7).map { entry($0, term: 2) })
        #expect(s.lastIndex() == 7 && s.durableLastIndex == 3)
        try s.sync()
        #expect(s.lastIndex() == 7 && s.durableLastIndex == 7)

        // Written but not synced, then the process dies (the page cache survives it).
        try s.append((8...12).map { entry($0, term: 2) })
        try s.writeBuffered()
        #expect(s.lastIndex() == 12 && s.durableLastIndex == 7)
        let reopened = try FileLogStorage(directory: "/d", voters: [1], fileSystem: fs)
        #expect(reopened.lastIndex() == 12)
        #expect(reopened.durableLastIndex == reopened.lastIndex())
        let claimed = reopened.durableLastIndex

        // Then the power goes.
        fs.powerLoss(seed: seed)
        let again = try FileLogStorage(directory: "/d", voters: [1], fileSystem: fs)
        #expect(again.lastIndex() >= claimed, "seed \(seed): \(again.lastIndex()) after reporting \(claimed) durable")
        #expect(try again.entries(in: 1..<(again.lastIndex() + 1), maxBytes: .max).map(\.term.rawValue) == [1, 1, 1] + Array(repeating: 2, count: Int(again.lastIndex().rawValue) - 3))
    }
}
