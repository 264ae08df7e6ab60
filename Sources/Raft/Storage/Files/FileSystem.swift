#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import CRaftSystem

/// The file operations durable storage needs, so tests can swap in a layer that simulates
/// power loss (`RaftTestKit.SimulatedFileSystem`). ``PosixFileSystem`` is the real one.
///
/// Durability model (POSIX): data written to a file survives a crash only after
/// ``StorageFile/sync()``; a file's creation, rename or removal survives only after
/// ``syncDirectory(_:)`` on its directory.
///
/// Threads: a ``FileLogStorage`` run by a ``RaftNode`` calls its file system from the node's
/// I/O thread, its snapshot thread and its run loop, on different files at once, so an
/// implementation must be safe for that. ``PosixFileSystem`` is (it keeps no state);
/// `RaftTestKit.SimulatedFileSystem` is not, and is meant for driving a storage directly.
public protocol FileSystem: AnyObject {
    /// Creates `path` (and parents) if missing.
    func createDirectory(_ path: String) throws(RaftError)
    /// Names in directory `path` (not `.`/`..`).
    func contentsOfDirectory(_ path: String) throws(RaftError) -> [String]
    /// Opens a file for reading and writing; creates it (empty) when `create` is set.
    func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile
    /// Whether `path` exists.
    func exists(_ path: String) -> Bool
    /// Removes a file.
    func remove(_ path: String) throws(RaftError)
    /// Atomically renames a file, replacing `to` if present.
    func rename(_ from: String, to: String) throws(RaftError)
    /// Makes creations, renames and removals in directory `path` durable.
    func syncDirectory(_ path: String) throws(RaftError)
}

/// An open file.
public protocol StorageFile: AnyObject {
    /// Current size in bytes.
    func size() throws(RaftError) -> Int
    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8]
    /// Writes `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError)
    /// Makes everything written so far durable: `fdatasync` on Linux, `fcntl(F_FULLFSYNC)` on
    /// Darwin (plain `fsync` there does not reach stable storage).
    func sync() throws(RaftError)
    /// Cuts the file to `size` bytes.
    func truncate(to size: Int) throws(RaftError)
    /// Closes the file. Further calls fail.
    func close()
    /// Reserves disk space for the file's first `bytes` bytes without changing its size, so
    /// later appends do not allocate blocks (and their metadata) at every sync. A hint: the
    /// default does nothing.
    func reserve(_ bytes: Int)
    /// Takes an exclusive advisory lock on the file without waiting (`flock`); `false` if another
    /// holder has it. Released when the file is closed. The default always succeeds.
    func tryLock() -> Bool
}

extension StorageFile {
    public func reserve(_ bytes: Int) {}
    public func tryLock() -> Bool { true }
}

extension StorageFile {
    /// Writes `bytes` at `offset`.
    public func write(_ bytes: [UInt8], at offset: Int) throws(RaftError) {
        var failure: RaftError?
        bytes.withUnsafeBytes { b in
            do throws(RaftError) { try write(b, at: offset) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

// System calls under names that do not clash with the methods below (and work on Glibc and
// Darwin alike).
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemClose(_ fd: Int32) { _ = close(fd) }
private func systemTryLock(_ fd: Int32) -> Bool { flock(fd, LOCK_EX | LOCK_NB) == 0 }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }
private func reserveSpace(_ fd: Int32, _ bytes: Int) {
    // Allocate, leave the size alone. Unsupported file systems just say no; it is only a hint.
    _ = craft_reserve(fd, Int64(bytes))
}
/// Makes a file's data durable. Linux: `fdatasync` (the data and the metadata needed to read it
/// back, such as the size). Darwin: `fullSync`, because there `fsync` and `fdatasync` only
/// hand the data to the drive, whose cache may lose or reorder it on power loss.
private func syncData(_ fd: Int32) -> Int32 {
    #if canImport(Darwin)
        return fullSync(fd)
    #else
        return fdatasync(fd)
    #endif
}

/// Makes a directory's entries (creations, renames, removals) durable: `fsync` on the directory;
/// on Darwin `fullSync`, for the same reason as `syncData`.
private func syncDirectoryEntries(_ fd: Int32) -> Int32 {
    #if canImport(Darwin)
        return fullSync(fd)
    #else
        return fsync(fd)
    #endif
}

#if canImport(Darwin)
    /// `fcntl(F_FULLFSYNC)`: the drive writes its cache to stable storage before this returns.
    ///
    /// Some file systems refuse it (network shares such as SMB, some FUSE file systems); there
    /// plain `fsync` is the best that can be had, and it is used instead, as Go's `os.File.Sync`
    /// and SQLite do. Only such a refusal falls back: an I/O error is returned as it is, because
    /// a second call after a failed flush can report success for data that never reached the
    /// disk.
    private func fullSync(_ fd: Int32) -> Int32 {
        while true {
            if fcntl(fd, F_FULLFSYNC) == 0 { return 0 }
            switch errno {
            case EINTR: continue
            case ENOTSUP, EOPNOTSUPP, EINVAL: return fsync(fd)
            default: return -1
            }
        }
    }
#endif

/// The real file system, through POSIX calls. Blocking: call it off the cooperative pool.
public final class PosixFileSystem: FileSystem, @unchecked Sendable {
    // Unchecked but sound: the class has no stored state; every call goes straight to the
    // kernel, which serializes what needs it.

    /// Creates the file system handle (it holds no state).
    public init() {}

    static func fail(_ what: String, _ path: String, file: String = #fileID, line: Int = #line) -> RaftError {
        let e = errno
        let code: RaftError.Code = e == ENOSPC || e == EDQUOT ? .noSpace : .io
        return RaftError(code, "\(what) \(path): \(String(cString: strerror(e))) (errno \(e))", file: file, line: line)
    }

    public func createDirectory(_ path: String) throws(RaftError) {
        var parent = path.hasPrefix("/") ? "/" : "."
        var partial = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o755) == 0 {
                // The new directory entry is durable only once its parent is synced: without it a
                // power loss could take the whole log (and the vote it holds) with it.
                try syncDirectory(parent)
            } else if errno != EEXIST {
                throw Self.fail("cannot create directory", partial)
            }
            parent = partial
        }
    }

    public func contentsOfDirectory(_ path: String) throws(RaftError) -> [String] {
        guard let d = opendir(path) else { throw Self.fail("cannot list directory", path) }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile {
        let fd = systemOpen(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
        if fd < 0 { throw Self.fail("cannot open", path) }
        return PosixFile(fd: fd, path: path)
    }

    public func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func remove(_ path: String) throws(RaftError) {
        if unlink(path) != 0 && errno != ENOENT { throw Self.fail("cannot remove", path) }
    }

    public func rename(_ from: String, to: String) throws(RaftError) {
        if systemRename(from, to) != 0 { throw Self.fail("cannot rename to \(to):", from) }
    }

    public func syncDirectory(_ path: String) throws(RaftError) {
        let fd = systemOpen(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        if fd < 0 { throw Self.fail("cannot open directory", path) }
        defer { systemClose(fd) }
        if syncDirectoryEntries(fd) != 0 { throw Self.fail("cannot sync directory", path) }
    }
}

final class PosixFile: StorageFile {
    private var fd: Int32
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { if fd >= 0 { systemClose(fd) } }

    func size() throws(RaftError) -> Int {
        var st = stat()
        if fstat(fd, &st) != 0 { throw PosixFileSystem.fail("cannot stat", path) }
        return Int(st.st_size)
    }

    func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFileSystem.fail("cannot read", path)
            }
            if n == 0 { break }
            done += n
        }
        if done < count { out.removeSubrange(done...) }
        return out
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFileSystem.fail("cannot write", path)
            }
            done += n
        }
    }

    func sync() throws(RaftError) {
        if syncData(fd) != 0 { throw PosixFileSystem.fail("cannot sync", path) }
    }

    func truncate(to size: Int) throws(RaftError) {
        if ftruncate(fd, off_t(size)) != 0 { throw PosixFileSystem.fail("cannot truncate", path) }
    }

    func tryLock() -> Bool { fd >= 0 && systemTryLock(fd) }

    func close() {
        if fd >= 0 { systemClose(fd) }
        fd = -1
    }

    func reserve(_ bytes: Int) {
        if fd >= 0 { reserveSpace(fd, bytes) }
    }
}
