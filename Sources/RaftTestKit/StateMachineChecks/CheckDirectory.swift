#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Raft

/// The temporary directory of one run of the state machine checks: made under `TMPDIR` (or the
/// configured parent) with `mkdtemp`, handed out in named subdirectories, removed at the end.
final class CheckDirectory {
    let path: String
    private var made = 0

    init(parent: String?) throws(RaftError) {
        let base = parent ?? getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/raft-smchecks-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard result != nil else {
            throw RaftError(.io, "cannot make a temporary directory under \(base): errno \(errno)")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A new, empty directory named after `label`.
    func fresh(_ label: String) throws(RaftError) -> String {
        made += 1
        let dir = "\(path)/\(made)-\(label)"
        try PosixFileSystem().createDirectory(dir)
        return dir
    }

    /// Removes the directory and everything in it. Errors are ignored: it is temporary.
    func remove() { Self.removeTree(path) }

    /// Removes `path`; a directory with its contents. A symbolic link is removed, never
    /// followed, so nothing outside the tree is touched.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR, let names = try? PosixFileSystem().contentsOfDirectory(path) {
            for name in names { removeTree("\(path)/\(name)") }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
