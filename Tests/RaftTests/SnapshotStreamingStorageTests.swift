import Foundation
import RaftTestKit
import Testing

@testable import Raft

/// The storage side of streamed snapshots: a stream that verifies as it reads, and a snapshot
/// received from a leader written into a file and installed by renaming it.
@Suite("Snapshot streams in storage")
struct SnapshotStreamingStorageTests {
    static let meta = SnapshotMetadata(index: 50, term: 3, confState: ConfState(voters: [1, 2, 3]))

    /// `count` bytes written in pieces of `piece` (so the file holds many frames).
    static func data(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ $0 >> 9) } }

    /// A storage holding a snapshot of `data` at index 8, written in 64 KiB pieces.
    static func storageWithSnapshot(_ dir: TempDirectory, _ data: [UInt8], fs: any FileSystem = PosixFileSystem()) throws -> FileLogStorage {
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3], fileSystem: fs)
        try s.append((1...10).map { entry($0, term: 1) })
        try s.sync()
        let out = try s.beginSnapshot(at: 8, confState: nil)
        var k = 0
        while k < data.count {
            try out.write(data[k..<min(data.count, k + 65_536)])
            k += 65_536
        }
        try s.finishSnapshot(out)
        return s
    }

    func readAll(_ input: SnapshotInput, piece: Int = 10_000) throws(RaftError) -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let p = try input.read(upTo: piece)
            if p.isEmpty { return out }
            out += p
        }
    }

    /// One pass: a stream verified while reading reads the file once, where one verified
    /// first reads it twice; both hand out the same bytes.
    @Test func verifyingWhileReadingReadsTheFileOnce() throws {
        let dir = TempDirectory()
        let fs = ObservedFileSystem()
        let data = Self.data(700_000)
        let s = try Self.storageWithSnapshot(dir, data, fs: fs)
        defer { s.close() }
        let name = Snapshotter.fileName(s.snapshotMetadata())
        let size = try FileManager.default.attributesOfItem(atPath: "\(dir.path)/snap/\(name)")[.size] as! Int
        func bytesRead() -> Int { fs.record.withLock { $0.bytesRead[name] ?? 0 } }
        var before = bytesRead()
        let streamed = try s.openSnapshot(verification: .whileReading)
        #expect(bytesRead() - before < 128, "opening reads the header only")
        #expect(try readAll(streamed) == data)
        #expect(bytesRead() - before <= size, "one pass: \(bytesRead() - before) of \(size) bytes")
        before = bytesRead()
        #expect(try readAll(s.openSnapshot(verification: .beforeReading)) == data)
        #expect(bytesRead() - before >= 2 * size - 256, "verified first, then read")
        #expect(fs.record.withLock { $0.largestRead } <= 65_536 + 4, "read a frame at a time, never the whole file")
    }

    /// Damage in the data: a stream verified first refuses to open; one verified while reading
    /// hands out the bytes and throws on the read that reaches the end, so a sender (which asks
    /// whether it reached the end before it marks a chunk the last) never sends the chunk that
    /// ends the snapshot.
    @Test func verifyingWhileReadingThrowsAtTheEnd() throws {
        let dir = TempDirectory()
        let data = Self.data(300_000)
        let s = try Self.storageWithSnapshot(dir, data)
        defer { s.close() }
        let path = "\(dir.path)/snap/\(Snapshotter.fileName(s.snapshotMetadata()))"
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[150_000] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(throws: RaftError.self) { try s.openSnapshot(verification: .beforeReading) }
        let input = try s.openSnapshot(verification: .whileReading)
        var handedOut = 0
        do {
            while true {
                let piece = try input.read(upTo: 100_000)
                if piece.isEmpty { break }
                handedOut += piece.count
            }
            Issue.record("the damaged stream ended cleanly")
        } catch {
            #expect(error.code == .corruption)
            #expect(handedOut == data.count, "the end is where it throws")
        }
        // Unverified, it reads to the end: for files this node just wrote from verified bytes.
        #expect(try readAll(s.openSnapshot(verification: .skip)).count == data.count)
    }

    /// A snapshot received from a leader goes into a `.recv.tmp` file, invisible until it is
    /// installed; installing renames it into place and resets the log; it reads back after a
    /// reopen.
    @Test func receivedSnapshotIsInstalledFromItsFile() throws {
        let dir = TempDirectory()
        let data = Self.data(200_000)
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            try s.append((1...5).map { entry($0, term: 1) })
            try s.sync()
            let out = try s.beginReceivedSnapshot(Self.meta)
            #expect(out.count == 0)
            for k in stride(from: 0, to: data.count, by: 30_000) { try out.write(data[k..<min(data.count, k + 30_000)]) }
            let files = try FileManager.default.contentsOfDirectory(atPath: "\(dir.path)/snap")
            #expect(files == [Snapshotter.fileName(Self.meta) + ".0000000000000001.recv.tmp"], "\(files)")
            #expect(s.snapshotMetadata().index == .zero, "nothing visible before installing")
            try s.applySnapshot(out)
            #expect(s.snapshotMetadata() == Self.meta)
            #expect(s.firstIndex() == 51 && s.lastIndex() == 50)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir.path)/snap") == [Snapshotter.fileName(Self.meta)])
            try s.append((51...52).map { entry($0, term: 3) })
            try s.sync()
            s.close()
        }
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        defer { s.close() }
        #expect(s.recovery.completedSnapshotInstall == nil)
        #expect(s.firstIndex() == 51 && s.lastIndex() == 52)
        #expect(try readAll(s.openSnapshot()) == data)
        #expect(s.currentHardState.commit >= 50)
    }

    /// A received snapshot not installed (a crash) leaves its temporary file, which the next
    /// open removes; an out-of-date one is refused and its file removed.
    @Test func receivedFilesAreCleanedUp() throws {
        let dir = TempDirectory()
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            let out = try s.beginReceivedSnapshot(Self.meta)
            try out.write([1, 2, 3])
            try out.seal()
            s.close()
        }
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            #expect(s.recovery.removedTemporaryFiles == [Snapshotter.fileName(Self.meta) + ".0000000000000001.recv.tmp"])
            #expect(s.recovery.unknownFiles.isEmpty)
            try s.applySnapshot(Snapshot(metadata: Self.meta, data: [9]))
            let old = try s.beginReceivedSnapshot(SnapshotMetadata(index: 40, term: 3, confState: ConfState(voters: [1, 2, 3])))
            try old.write([4, 5])
            do {
                try s.applySnapshot(old)
                Issue.record("an older snapshot was installed")
            } catch {
                #expect(error.code == .snapshotOutOfDate)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir.path)/snap") == [Snapshotter.fileName(Self.meta)])
            s.close()
        }
    }

    /// A transfer started over with the same snapshot writes a file of its own: dropping the
    /// old one (queued behind its writes, so it may come after the new one began) never takes
    /// the new one with it. Names that only look like received files are left alone.
    @Test func aReceivedSnapshotStartedOverGetsItsOwnFile() throws {
        let dir = TempDirectory()
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        let first = try s.beginReceivedSnapshot(Self.meta)
        try first.write([1])
        let second = try s.beginReceivedSnapshot(Self.meta)
        first.abort()
        try second.write([2, 3])
        try s.applySnapshot(second)
        #expect(try s.snapshot().data == [2, 3])
        let name = Snapshotter.fileName(Self.meta)
        for junk in [name + ".recv.tmp", name + ".000000000000000g.recv.tmp", "x" + name.dropFirst() + ".0000000000000001.recv.tmp"] {
            _ = FileManager.default.createFile(atPath: "\(dir.path)/snap/\(junk)", contents: Data([0]))
        }
        s.close()
        let reopened = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        defer { reopened.close() }
        #expect(reopened.recovery.removedTemporaryFiles.isEmpty)
        #expect(reopened.recovery.unknownFiles.count == 3, "\(reopened.recovery.unknownFiles)")
    }

    /// A storage that implements none of the streaming methods keeps working through the
    /// protocol's defaults: a received snapshot is collected in memory and installed whole.
    @Test func customStorageUsesTheDefaults() throws {
        let s = MinimalStorage()
        let out = try s.beginReceivedSnapshot(Self.meta)
        try out.write([7, 8, 9])
        try s.applySnapshot(out)
        #expect(try s.snapshot() == Snapshot(metadata: Self.meta, data: [7, 8, 9]))
        #expect(try s.openSnapshot(verification: .whileReading).readAll() == [7, 8, 9])
    }
}

/// A `WritableLogStorage` that forwards the protocol's requirements only (no snapshot streaming
/// of its own), as a user's custom storage might.
final class MinimalStorage: ForwardingStorage {
    init() { super.init(MemoryLogStorage(voters: [1, 2, 3])) }
}
