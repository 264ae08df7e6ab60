import Raft

/// An in-memory ``FileSystem`` that can lose power.
///
/// It follows the POSIX durability rules the storage relies on: file contents survive a
/// crash only up to the last ``StorageFile/sync()``; creations, renames and removals only after
/// ``FileSystem/syncDirectory(_:)`` of their directory. ``powerLoss(seed:)`` applies a crash:
/// each file keeps its synced contents plus a random prefix of what was written since (a torn
/// write, sometimes followed by zeros, as when a file system extended a file whose data never
/// arrived), and the directory tree reverts to its last synced state.
///
/// ``failAfter(operations:)`` arms a power cut at the n-th mutating operation: that operation
/// and every later one throws, as if the machine had died at that instant.
public final class SimulatedFileSystem: FileSystem {
    final class Inode {
        var data: [UInt8] = []
        var synced: [UInt8] = []
    }

    var names: [String: Inode] = [:]
    var durableNames: [String: Inode] = [:]
    var directories: Set<String> = ["/"]
    var generation = 0
    var remaining: Int?
    /// Mutating operations performed so far (writes, syncs, truncations, creations, renames,
    /// removals, directory syncs).
    public private(set) var operations = 0
    /// Whether the armed power cut has happened.
    public private(set) var isDead = false
    /// The operation the armed power cut interrupted, e.g. `"sync /data/wal/…"`.
    public private(set) var interrupted: String?

    /// Creates an empty file system.
    public init() {}

    /// Arms a power cut: the `n`-th mutating operation from now fails, and so does everything
    /// after it until ``powerLoss(seed:)``.
    public func failAfter(operations n: Int) { remaining = n }

    func mutate(_ what: String, _ path: String) throws(RaftError) {
        if isDead { throw RaftError(.io, "\(what) \(path): power lost") }
        operations += 1
        if let r = remaining {
            if r <= 1 {
                isDead = true
                interrupted = "\(what) \(path)"
                remaining = nil
                throw RaftError(.io, "\(what) \(path): power lost")
            }
            remaining = r - 1
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let p = String(path[..<slash])
        return p.isEmpty ? "/" : p
    }

    /// Applies a crash: unsynced data is torn at a random byte (seeded), unsynced directory
    /// changes are lost, open files become invalid. The file system is usable again afterwards.
    public func powerLoss(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        names = durableNames
        var seen = Set<ObjectIdentifier>()
        for inode in names.values where seen.insert(ObjectIdentifier(inode)).inserted {
            let d = inode.data
            let s = inode.synced
            if d == s { continue }
            var result: [UInt8]
            if rng.next() % 3 == 0 {
                // Sectors of the unsynced writes reach the disk in any order: a random subset of
                // the 512-byte sectors that differ arrives; the others keep their synced bytes
                // (zeros where the file had none).
                let length = max(d.count, s.count)
                result = s + [UInt8](repeating: 0, count: length - s.count)
                for start in stride(from: 0, to: d.count, by: 512) {
                    let end = min(d.count, start + 512)
                    let old = start < s.count ? Array(s[start..<min(end, s.count)]) : []
                    if Array(d[start..<end]) != old && rng.next() % 2 == 0 {
                        result.replaceSubrange(start..<end, with: d[start..<end])
                    }
                }
                if d.count < s.count && rng.next() % 2 == 0 { result = Array(result.prefix(d.count)) }
            } else {
                // Writes reach the disk in order up to a random byte.
                let cut = Int(rng.next() % UInt64(max(d.count, s.count) + 1))
                // Bytes before the cut are the new ones (or the synced ones past a shortened
                // file's end); from the cut on, the synced ones. No byte moves.
                result = Array(d.prefix(cut))
                if result.count < cut && result.count < s.count { result += s[result.count..<min(cut, s.count)] }
                if cut < s.count { result += s[cut...] }
                if cut < d.count && rng.next() % 4 == 0 {
                    // The file grew but the data did not arrive: zeros.
                    result += [UInt8](repeating: 0, count: Int(rng.next() % UInt64(min(512, d.count - cut) + 1)))
                }
            }
            inode.data = result
            inode.synced = result
        }
        generation += 1
        isDead = false
        remaining = nil
    }

    // MARK: FileSystem

    public func createDirectory(_ path: String) throws(RaftError) {
        var p = path
        while p != "/" && p != "." && !directories.contains(p) {
            directories.insert(p)
            p = Self.parent(p)
        }
    }

    public func contentsOfDirectory(_ path: String) throws(RaftError) -> [String] {
        guard directories.contains(path) else { throw RaftError(.io, "cannot list directory \(path): no such directory") }
        let prefix = path.hasSuffix("/") ? path : path + "/"
        var out: [String] = []
        for name in names.keys where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if !rest.contains("/") { out.append(String(rest)) }
        }
        for d in directories where d.hasPrefix(prefix) {
            let rest = d.dropFirst(prefix.count)
            if !rest.isEmpty && !rest.contains("/") { out.append(String(rest)) }
        }
        return out.sorted()
    }

    public func open(_ path: String, create: Bool) throws(RaftError) -> any StorageFile {
        if let inode = names[path] { return SimulatedFile(fs: self, inode: inode, path: path) }
        guard create else { throw RaftError(.io, "cannot open \(path): no such file") }
        guard directories.contains(Self.parent(path)) else { throw RaftError(.io, "cannot open \(path): no such directory") }
        try mutate("create", path)
        let inode = Inode()
        names[path] = inode
        return SimulatedFile(fs: self, inode: inode, path: path)
    }

    public func exists(_ path: String) -> Bool { names[path] != nil || directories.contains(path) }

    public func remove(_ path: String) throws(RaftError) {
        try mutate("remove", path)
        names[path] = nil
    }

    public func rename(_ from: String, to: String) throws(RaftError) {
        try mutate("rename", from)
        guard let inode = names[from] else { throw RaftError(.io, "cannot rename \(from): no such file") }
        names[from] = nil
        names[to] = inode
    }

    public func syncDirectory(_ path: String) throws(RaftError) {
        try mutate("sync directory", path)
        let prefix = path.hasSuffix("/") ? path : path + "/"
        func inDir(_ n: String) -> Bool { n.hasPrefix(prefix) && !n.dropFirst(prefix.count).contains("/") }
        for n in durableNames.keys where inDir(n) && names[n] == nil { durableNames[n] = nil }
        for (n, inode) in names where inDir(n) { durableNames[n] = inode }
    }

    // MARK: Test helpers

    /// The current contents of a file (what a reader would see now), or `nil`.
    public func contents(_ path: String) -> [UInt8]? { names[path]?.data }

    /// Replaces a file's contents, durably (to plant damage in tests).
    public func setContents(_ path: String, _ bytes: [UInt8]) {
        let inode = names[path] ?? Inode()
        inode.data = bytes
        inode.synced = bytes
        names[path] = inode
        durableNames[path] = inode
        directories.insert(Self.parent(path))
    }
}

final class SimulatedFile: StorageFile {
    let fs: SimulatedFileSystem
    let inode: SimulatedFileSystem.Inode
    let path: String
    let generation: Int
    var closed = false

    init(fs: SimulatedFileSystem, inode: SimulatedFileSystem.Inode, path: String) {
        self.fs = fs
        self.inode = inode
        self.path = path
        generation = fs.generation
    }

    func valid() throws(RaftError) {
        if closed || generation != fs.generation { throw RaftError(.io, "\(path): file is closed or predates a crash") }
    }

    func size() throws(RaftError) -> Int {
        try valid()
        return inode.data.count
    }

    func read(at offset: Int, count: Int) throws(RaftError) -> [UInt8] {
        try valid()
        if offset >= inode.data.count { return [] }
        return Array(inode.data[offset..<min(inode.data.count, offset + count)])
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(RaftError) {
        try valid()
        try fs.mutate("write", path)
        if inode.data.count < offset { inode.data += [UInt8](repeating: 0, count: offset - inode.data.count) }
        let end = offset + bytes.count
        if inode.data.count < end { inode.data += [UInt8](repeating: 0, count: end - inode.data.count) }
        inode.data.replaceSubrange(offset..<end, with: bytes)
    }

    func sync() throws(RaftError) {
        try valid()
        try fs.mutate("sync", path)
        inode.synced = inode.data
    }

    func truncate(to size: Int) throws(RaftError) {
        try valid()
        try fs.mutate("truncate", path)
        if size < inode.data.count { inode.data.removeSubrange(size...) } else {
            inode.data += [UInt8](repeating: 0, count: size - inode.data.count)
        }
    }

    func close() { closed = true }
}
