// (d) Reopening a long log: how long `FileLogStorage.init` takes to replay N entries, and how
// much memory the process holds afterwards compared with what writing them left resident.

#if canImport(Glibc)
    import Glibc
#endif
import BenchSupport
import Raft

/// The process's resident set size in bytes (`VmRSS` in /proc/self/status), or 0 if unknown.
func residentBytes() -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = line.withUnsafeBufferPointer { b in
            String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        guard text.hasPrefix("VmRSS:") else { continue }
        let kib = text.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) } ?? 0
        return kib * 1024
    }
    return 0
}

/// Gives memory the allocator holds free back to the system (glibc's `malloc_trim`, looked up
/// at run time: the Glibc module does not declare it).
func releaseFreedMemory() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(nil, "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

func mebibytes(_ bytes: Int) -> String { fixed(Double(bytes) / Double(1 << 20), 1) + " MiB" }

/// For each count: writes that many entries of `payloadBytes` in synced batches of `batch`
/// into a fresh FileLogStorage (default options), closes it, reopens it, and prints the
/// open's time and the resident memory at each step. The files are in the page cache when
/// reopened, so the time is the replay's CPU cost, not the disk's.
func runRecovery(counts: [Int], batch: Int, payloadBytes: Int = 128, root: String) throws(RaftError) {
    print("(d) reopening a long log: \(payloadBytes) B entries appended in synced batches of \(grouped(batch)), closed, reopened (default options)")
    let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
    for n in counts {
        let dir = root + "/recovery-\(n)"
        // Each phase starts from what the previous one really holds: memory it freed is given
        // back first (never after a measured phase, which is judged with its garbage).
        releaseFreedMemory()
        let start = residentBytes()
        var written = 0
        do {
            let writer = try FileLogStorage(directory: dir, voters: [1])
            var next: UInt64 = 1
            var entries: [LogEntry] = []
            entries.reserveCapacity(batch)
            while next <= UInt64(n) {
                entries.removeAll(keepingCapacity: true)
                while entries.count < batch && next <= UInt64(n) {
                    entries.append(LogEntry(term: 1, index: LogIndex(rawValue: next), data: payload))
                    next += 1
                }
                try writer.append(entries)
                try writer.setHardState(HardState(term: 1, vote: 1, commit: LogIndex(rawValue: next - 1)))
                try writer.sync()
            }
            written = residentBytes()
            writer.close()
        }
        releaseFreedMemory()
        let closed = residentBytes()
        var opened = 0
        var seconds = 0.0
        do {
            let t0 = nanoseconds()
            let reader = try FileLogStorage(directory: dir, voters: [1])
            seconds = Double(nanoseconds() - t0) / 1e9
            opened = residentBytes()
            guard reader.lastIndex() == LogIndex(rawValue: UInt64(n)) else {
                throw RaftError(.corruption, "reopened log ends at \(reader.lastIndex()), not \(n)")
            }
            reader.close()
        }
        removeTree(dir)
        let heldWriting = written - start
        let heldOpen = opened - closed
        print(
            "    \(padLeft(grouped(n), 9)) entries: open \(fixed(seconds, 3)) s (\(grouped(Int((Double(n) / seconds).rounded()))) entries/s); resident: \(mebibytes(start)) before writing, \(mebibytes(written)) after writing (+\(fixed(Double(heldWriting) / Double(n), 1)) B/entry), \(mebibytes(closed)) after closing, \(mebibytes(opened)) after reopening (+\(fixed(Double(heldOpen) / Double(n), 1)) B/entry, \(fixed(Double(heldOpen) / Double(max(heldWriting, 1)), 2))x of writing)"
        )
    }
}
