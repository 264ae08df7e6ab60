import Foundation
import Synchronization

@testable import Raft

/// The real file system, recording what is read from and written to snapshot files, how much
/// at a time, and whether it happened on a node's run loop; it can slow snapshot reads down,
/// to stretch a transfer over many ticks. Safe to share between threads.
final class ObservedFileSystem: FileSystem, Sendable {
    struct Record {
        /// Bytes read from each snapshot file (`.snap`), by file name.
        var bytesRead: [String: Int] = [:]
        /// The largest single read from a snapshot file.
        var largestRead = 0
        /// Reads of a snapshot file's data (past its header) on a run loop: file and offset.
        var dataReadsOnLoop: [(String, Int)] = []
        /// Data written to a temporary snapshot file on a run loop: file and byte count.
        var writesOnLoop: [(String, Int)] = []
        /// Bytes written to received snapshot files (`…recv.tmp`).
        var receivedBytesWritten = 0
    }

    let base = PosixFileSystem()
    let record = Mutex(Record())
    /// How long each read of a snapshot file's data takes, at least.
    let readDelay = Mutex<Duration>(.zero)

    /// Past this offset a snapshot file read is of its data (the header is far shorter).
    static let headerBytes = 128

    static func name(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

    func createDirectory(_ path: String) throws(RaftError) { try base.createDirectory(path) }
    func contentsOfDirectory(_ path: String) throws(RaftError) -> [String] { try base.contentsOfDirectory(path) }
    func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile {
        ObservedFile(base: try base.open(path, create: create), path: path, fs: self)
    }
    func exists(_ path: String) -> Bool { base.exists(path) }
    func remove(_ path: String) throws(RaftError) { try base.remove(path) }
    func rename(_ from: String, to: String) throws(RaftError) { try base.rename(from, to: to) }
    func syncDirectory(_ path: String) throws(RaftError) { try base.syncDirectory(path) }
}

final class ObservedFile: StorageFile {
    let base: any StorageFile
    let path: String
    let name: String
    let fs: ObservedFileSystem
    var isSnapshot: Bool { name.hasSuffix(".snap") }
    var isTemporarySnapshot: Bool { name.hasSuffix(".snap.tmp") || name.hasSuffix(".recv.tmp") }

    init(base: any StorageFile, path: String, fs: ObservedFileSystem) {
        self.base = base
        self.path = path
        name = ObservedFileSystem.name(path)
        self.fs = fs
    }

    func size() throws(RaftError) -> Int { try base.size() }

    func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8] {
        let bytes = try base.read(at: offset, count: count)
        if isSnapshot {
            let onLoop = LoopExecutor.isCurrent
            fs.record.withLock { r in
                r.bytesRead[name, default: 0] += bytes.count
                r.largestRead = max(r.largestRead, bytes.count)
                if onLoop && offset >= ObservedFileSystem.headerBytes { r.dataReadsOnLoop.append((name, offset)) }
            }
            let delay = fs.readDelay.withLock { $0 }
            if delay > .zero && offset >= ObservedFileSystem.headerBytes {
                Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
            }
        }
        return bytes
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError) {
        if isTemporarySnapshot {
            let onLoop = LoopExecutor.isCurrent
            let received = name.hasSuffix(".recv.tmp")
            fs.record.withLock { r in
                if onLoop { r.writesOnLoop.append((name, bytes.count)) }
                if received { r.receivedBytesWritten += bytes.count }
            }
        }
        try base.write(bytes, at: offset)
    }

    func sync() throws(RaftError) { try base.sync() }
    func truncate(to size: Int) throws(RaftError) { try base.truncate(to: size) }
    func close() { base.close() }
    func reserve(_ bytes: Int) { base.reserve(bytes) }
    func tryLock() -> Bool { base.tryLock() }
}
