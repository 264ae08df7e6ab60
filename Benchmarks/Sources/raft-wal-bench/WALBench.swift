// Durable write throughput of FileLogStorage against the disk's raw fdatasync rate.
//
// (a) raw: write(2) a small record at the end of a file, fdatasync, repeat;
// (b) FileLogStorage, one writer, no batching: append 1 entry, sync(), repeat;
// (c) FileLogStorage, batches: append 1,000 entries, sync(), repeat;
// (d) with --recovery only: reopening a long log (Recovery.swift).
//
// The raw run and the unbatched runs are interleaved in short rounds, so that a disk whose
// speed drifts (a shared VM, a cache filling) affects them alike and the percentage compares
// like with like. Everything happens in a temporary directory that is removed at the end.

#if canImport(Glibc)
    import Glibc
#endif
import ArgumentParser
import BenchSupport
import Raft

// MARK: - Options

/// The command-line options (`--help` prints them with their defaults). A new case adds its own
/// options here.
struct Options: ParsableArguments {
    @Option(
        name: [.customShort("d"), .customLong("duration")],
        help: ArgumentHelp("Measured time per case ((a) and (b) are split into interleaved rounds).", valueName: "seconds"))
    var seconds = 3.0

    @Option(name: [.customShort("r"), .customLong("rounds")], help: ArgumentHelp("Interleaved rounds for (a) and (b).", valueName: "n"))
    var rounds = 12

    @Option(name: [.customShort("b"), .customLong("batch")], help: ArgumentHelp("Entries per sync in (c).", valueName: "n"))
    var batch = 1_000

    @Option(
        name: [.customShort("p"), .customLong("payload")],
        help: ArgumentHelp("Entry sizes in bytes, comma separated.", valueName: "list"))
    var sizeList = IntList([16, 4_096])

    @Option(name: .customLong("raw-record"), help: ArgumentHelp("Record size of the raw fdatasync loop.", valueName: "bytes"))
    var rawRecord = 40

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where to create the temporary directory.", valueName: "path"))
    var parent = "/tmp"

    @Option(
        name: .customLong("recovery"),
        help: ArgumentHelp(
            "Only (d): write each count of 128 B entries (comma separated, e.g. 100000,1000000,4000000) in synced batches of --batch, close, reopen; print the open's time and resident memory.",
            valueName: "list"))
    var recovery: IntList?

    /// The entry sizes, in bytes.
    var sizes: [Int] { sizeList.values }

    func validate() throws {
        try requireSeconds(seconds, "--duration", allowZero: false)
        try require(rounds > 0, "--rounds needs a positive integer, got '\(rounds)'")
        try require(batch > 0, "--batch needs a positive integer, got '\(batch)'")
        try require(rawRecord > 0, "--raw-record needs a positive integer, got '\(rawRecord)'")
        try requireAll(sizeList, atLeast: 0, "--payload")
        if let recovery { try requireAll(recovery, atLeast: 1, "--recovery") }
    }
}

// MARK: - Measurement

@inline(__always) func nanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Accumulated over the rounds of one case.
struct Tally {
    var operations = 0  // syncs
    var entries = 0
    var payloadBytes = 0
    var nanos: UInt64 = 0
    /// Latency of each operation (append + sync, or write + fdatasync), in nanoseconds.
    var latencies: [UInt64] = []
    /// FileLogStorage only: time inside `append(_:)` (encoding, checksums, index, cache).
    var appendNanos: UInt64 = 0
    /// Operations per second of each timed slice (one per round in (a) and (b)).
    var sliceRates: [Double] = []

    var seconds: Double { Double(nanos) / 1e9 }
    var syncsPerSecond: Double { Double(operations) / seconds }
    var entriesPerSecond: Double { Double(entries) / seconds }
    var megabytesPerSecond: Double { Double(payloadBytes) / seconds / 1e6 }
    var meanLatencyMicros: Double { seconds * 1e6 / Double(max(operations, 1)) }

    func percentileMicros(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let sorted = latencies.sorted()
        let k = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
        return Double(sorted[k]) / 1e3
    }
}

/// The raw disk: write `recordBytes` at the end of one file and fdatasync, like a WAL with no
/// framing. With `preallocate`, the file is first filled with that many zero bytes and synced,
/// and the records then overwrite it (wrapping around at the end): the file's size never
/// changes, so fdatasync has no metadata to write, only data.
final class RawSyncer {
    let fd: Int32
    let recordBytes: Int
    let preallocated: Int
    var offset = 0
    var record: [UInt8]

    init(path: String, recordBytes: Int, preallocate: Int = 0) throws(RaftError) {
        fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o644)
        if fd < 0 { throw RaftError(.io, "cannot create \(path): errno \(errno)") }
        self.recordBytes = recordBytes
        record = [UInt8](repeating: 0xA5, count: recordBytes)
        preallocated = preallocate
        if preallocate > 0 {
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            var done = 0
            while done < preallocate {
                let n = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress!, min($0.count, preallocate - done), off_t(done)) }
                if n <= 0 { throw RaftError(.io, "cannot preallocate \(path): errno \(errno)") }
                done += n
            }
            if fsync(fd) != 0 { throw RaftError(.io, "cannot sync \(path): errno \(errno)") }
        }
    }

    deinit { close(fd) }

    @inline(__always) func step() throws(RaftError) {
        if preallocated > 0 && offset + recordBytes > preallocated { offset = 0 }
        // Different bytes every time, as a real log would write.
        record[0] = UInt8(truncatingIfNeeded: offset)
        let n = record.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
        if n != record.count { throw RaftError(.io, "raw write failed: errno \(errno)") }
        offset += n
        if fdatasync(fd) != 0 { throw RaftError(.io, "raw fdatasync failed: errno \(errno)") }
    }
}

/// One FileLogStorage in its own directory, appending entries of one size.
final class WALWriter {
    let storage: FileLogStorage
    let payload: [UInt8]
    let perSync: Int
    var next: LogIndex
    var batch: [LogEntry] = []
    /// Time spent in `append(_:)` since the last read.
    var appendNanos: UInt64 = 0

    init(directory: String, payloadBytes: Int, perSync: Int) throws(RaftError) {
        storage = try FileLogStorage(directory: directory, voters: [1])
        payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        self.perSync = perSync
        next = storage.lastIndex() + 1
        try storage.setHardState(HardState(term: 1, vote: 1, commit: .zero))
        try storage.sync()
        batch.reserveCapacity(perSync)
    }

    /// Appends `perSync` entries and syncs: when it returns they are durable.
    @inline(__always) func step() throws(RaftError) {
        batch.removeAll(keepingCapacity: true)
        for _ in 0..<perSync {
            batch.append(LogEntry(term: 1, index: next, data: payload))
            next = next + 1
        }
        let t0 = nanoseconds()
        try storage.append(batch)
        appendNanos += nanoseconds() - t0
        try storage.sync()
    }

    /// Entries written so far (warm-up included).
    var written: Int { Int(next.rawValue) - 1 }

    func close() {
        precondition(storage.durableLastIndex == next - 1, "not everything appended was durable")
        storage.close()
    }
}

/// Runs `step` for `seconds`, adding syncs, entries and latencies to `tally`.
func timed(_ tally: inout Tally, seconds: Double, entriesPerSync: Int, payload: Int, _ step: () throws(RaftError) -> Void) throws(RaftError) {
    let budget = UInt64(seconds * 1e9)
    let start = nanoseconds()
    var last = start
    var n = 0
    repeat {
        try step()
        let t = nanoseconds()
        tally.latencies.append(t - last)
        last = t
        n += 1
    } while last - start < budget
    tally.nanos += last - start
    tally.operations += n
    tally.sliceRates.append(Double(n) / (Double(last - start) / 1e9))
    tally.entries += n * entriesPerSync
    tally.payloadBytes += n * entriesPerSync * payload
}

// MARK: - Files



/// Total size of the files under `path`.
func treeBytes(_ path: String) -> Int {
    var st = stat()
    guard lstat(path, &st) == 0 else { return 0 }
    guard (st.st_mode & S_IFMT) == S_IFDIR else { return Int(st.st_size) }
    guard let d = opendir(path) else { return 0 }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    closedir(d)
    return names.reduce(0) { $0 + treeBytes(path + "/" + $1) }
}

/// The file system type of `path`, from /proc/self/mounts (longest matching mount point).
func fileSystemDescription(_ path: String) -> String {
    guard let f = fopen("/proc/self/mounts", "r") else { return "unknown file system" }
    defer { fclose(f) }
    var best = (mount: "", text: "unknown file system")
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = line.withUnsafeBufferPointer { b in
            String(decoding: b.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let fields = text.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let mount = String(fields[1])
        let under = path == mount || path.hasPrefix(mount.hasSuffix("/") ? mount : mount + "/")
        if under && mount.count >= best.mount.count { best = (mount, "\(fields[2]) on \(fields[0]) mounted at \(mount)") }
    }
    return best.text
}

// MARK: - Formatting (no Foundation)



func median(_ xs: [Double]) -> Double {
    guard !xs.isEmpty else { return .nan }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// `a` as a percentage of `b`, round by round (both ran in the same rounds): the median.
func pairedPercent(_ a: Tally, _ b: Tally) -> Double {
    median(zip(a.sliceRates, b.sliceRates).map { 100 * $0 / $1 })
}


func sizeLabel(_ bytes: Int) -> String {
    bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes / 1024) KiB" : "\(bytes) B"
}

func latencyText(_ t: Tally) -> String {
    "mean \(fixed(t.meanLatencyMicros, 1)) µs, p50 \(fixed(t.percentileMicros(0.5), 1)) µs, p99 \(fixed(t.percentileMicros(0.99), 1)) µs"
}

/// Where a FileLogStorage iteration's time went: `append(_:)` (CPU only) and `sync()` (write,
/// fdatasync, bookkeeping), per iteration.
func splitText(_ t: Tally) -> String {
    let ops = Double(max(t.operations, 1))
    let append = Double(t.appendNanos) / 1e3 / ops
    return "append() \(fixed(append, 1)) µs + sync() \(fixed(t.meanLatencyMicros - append, 1)) µs per iteration"
}

/// Runs `step` of `w` for `seconds`, adding to `tally`, with the time inside `append(_:)`.
func timed(_ tally: inout Tally, _ w: WALWriter, seconds: Double, payload: Int) throws(RaftError) {
    w.appendNanos = 0
    try timed(&tally, seconds: seconds, entriesPerSync: w.perSync, payload: payload) { () throws(RaftError) in try w.step() }
    tally.appendNanos += w.appendNanos
}

// MARK: - Main

@main
struct RaftWALBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-wal-bench",
        abstract: "Durable write throughput of FileLogStorage against the disk's raw fdatasync rate.",
        discussion: """
            (a) raw disk: write a small record at the end of a file + fdatasync; (b) FileLogStorage, one entry per \
            sync, interleaved with (a); (c) FileLogStorage, batches per sync. Exits with status 3 when a target is \
            missed. With --recovery, only (d): reopening a long log (Recovery.swift). See Benchmarks/README.md.
            """)

    @OptionGroup var options: Options

    func run() throws {
        let root = makeTemporaryDirectory(in: options.parent, for: "raft-wal-bench")
        defer { removeTree(root) }
        let missed: Bool
        do {
            missed = try Self.run(options, root: root)
        } catch {
            print("raft-wal-bench: failed: \(error)")
            throw ExitCode.failure
        }
        if missed { throw ExitCode(3) }
    }

    /// Runs every case in order, then judges the targets; `true` if one was missed. A new case
    /// (recovery, say) is one more `measure...` function called here, with its results in a
    /// struct of its own, and its target, if it has one, in `judgeTargets`.
    static func run(_ options: Options, root: String) throws(RaftError) -> Bool {
        print("raft-wal-bench: \(root) (\(fileSystemDescription(root)))")
        if let recovery = options.recovery {
            try runRecovery(counts: recovery.values, batch: options.batch, root: root)
            return false
        }
        print("FileLogStorage with default options (64 MiB segments); every figure counts only operations that returned durable")
        print("")
        let unbatched = try measureUnbatched(options, root: root)
        let batched = try measureBatched(options, root: root)
        return judgeTargets(options, unbatched: unbatched, batched: batched)
    }

    /// What (a) and (b) measured.
    struct Unbatched {
        /// The raw loop's variants: record size, and whether it overwrites a preallocated file.
        /// The first is the baseline (`--raw-record` bytes, appended).
        var rawVariants: [(record: Int, preallocated: Bool)]
        /// One tally per raw variant.
        var raw: [Tally]
        /// (b): one tally per entry size.
        var single: [Tally]
        /// Bytes FileLogStorage writes for one entry of each size.
        var walRecord: [Int]

        /// The baseline of (a).
        var baseline: Tally { raw[0] }

        /// The raw variant with `record`-byte records.
        func raw(record: Int, preallocated: Bool) -> Tally {
            raw[rawVariants.firstIndex { $0.record == record && $0.preallocated == preallocated }!]
        }
    }

    /// (a) and (b), interleaved round by round.
    static func measureUnbatched(_ options: Options, root: String) throws(RaftError) -> Unbatched {
        // Besides the official raw baseline (small records appended), the raw loop also runs with records as large as what
        // FileLogStorage writes per entry, so that the disk's cost of a larger write can be told
        // apart from the library's; and, for reference, overwriting a preallocated file (what
        // preallocated segments would buy: no file-size change for fdatasync to write).
        let walRecord = options.sizes.map { $0 + 26 }  // frame 8 + type 1 + term 8 + index 8 + kind 1
        var rawVariants: [(record: Int, preallocated: Bool)] = [(options.rawRecord, false), (options.rawRecord, true)]
        for r in walRecord { rawVariants += [(r, false), (r, true)] }
        var raws: [RawSyncer] = []
        for (k, v) in rawVariants.enumerated() {
            raws.append(try RawSyncer(path: root + "/raw-\(k).log", recordBytes: v.record, preallocate: v.preallocated ? 16 << 20 : 0))
        }
        var writers: [WALWriter] = []
        for size in options.sizes {
            writers.append(try WALWriter(directory: root + "/single-\(size)", payloadBytes: size, perSync: 1))
        }
        // Warm up: the files' first blocks, the code.
        var scratch = Tally()
        for r in raws { try timed(&scratch, seconds: 0.1, entriesPerSync: 1, payload: 0) { () throws(RaftError) in try r.step() } }
        for w in writers { try timed(&scratch, w, seconds: 0.2, payload: 0) }

        var rawTallies = rawVariants.map { _ in Tally() }
        var singleTallies = options.sizes.map { _ in Tally() }
        let slice = options.seconds / Double(options.rounds)
        for _ in 0..<options.rounds {
            for (k, r) in raws.enumerated() {
                try timed(&rawTallies[k], seconds: slice, entriesPerSync: 1, payload: rawVariants[k].record) { () throws(RaftError) in
                    try r.step()
                }
            }
            for (k, w) in writers.enumerated() {
                try timed(&singleTallies[k], w, seconds: slice, payload: options.sizes[k])
            }
        }
        raws.removeAll()
        var singleWAL: [Double] = []
        for (k, w) in writers.enumerated() {
            w.close()
            singleWAL.append(Double(treeBytes(root + "/single-\(options.sizes[k])/wal")) / Double(w.written))
            removeTree(root + "/single-\(options.sizes[k])")
        }

        let results = Unbatched(rawVariants: rawVariants, raw: rawTallies, single: singleTallies, walRecord: walRecord)

        let rawTally = results.baseline
        print("(a) raw disk: write(\(options.rawRecord) B) at the end of a file + fdatasync, \(grouped(rawTally.operations)) times in \(fixed(rawTally.seconds, 2)) s")
        print("    \(fixed(rawTally.syncsPerSecond, 0)) syncs/s, \(latencyText(rawTally))")
        print("    for comparison (same loop, interleaved):")
        for (k, v) in rawVariants.enumerated() where k > 0 {
            let t = rawTallies[k]
            let what = v.preallocated ? "overwriting a preallocated file" : "appended"
            print("    \(padLeft("\(v.record) B", 7)) \(what): \(padLeft(fixed(t.syncsPerSecond, 0), 6)) syncs/s, \(latencyText(t))")
        }
        print("")
        print("(b) FileLogStorage, one writer, no batching: append(1 entry) + sync() per iteration (interleaved with (a), \(options.rounds) rounds)")
        for (k, size) in options.sizes.enumerated() {
            let t = singleTallies[k]
            let pct = 100 * t.syncsPerSecond / rawTally.syncsPerSecond
            let sized = results.raw(record: walRecord[k], preallocated: false)
            print(
                "    \(padLeft(sizeLabel(size), 7)): \(padLeft(fixed(t.entriesPerSecond, 0), 9)) entries/s, \(padLeft(fixed(t.syncsPerSecond, 0), 7)) syncs/s, \(padLeft(fixed(t.megabytesPerSecond, 2), 7)) MB/s payload"
            )
            print(
                "             \(fixed(pct, 1))% of the raw fdatasync rate overall, \(fixed(pairedPercent(t, rawTally), 1))% as the median of the rounds; against raw with \(walRecord[k]) B records appended: \(fixed(100 * t.syncsPerSecond / sized.syncsPerSecond, 1))% overall, \(fixed(pairedPercent(t, sized), 1))% median"
            )
            print("             \(latencyText(t)); \(splitText(t)); \(fixed(singleWAL[k], 1)) WAL bytes/entry")
        }
        print("")
        return results
    }

    /// (c): batches of `--batch` entries per sync, one tally per entry size.
    static func measureBatched(_ options: Options, root: String) throws(RaftError) -> [Tally] {
        print("(c) FileLogStorage, batches: append(\(grouped(options.batch)) entries) + sync() per iteration, \(fixed(options.seconds, 1)) s each")
        var batchTallies: [Tally] = []
        for size in options.sizes {
            let dir = root + "/batch-\(size)"
            let w = try WALWriter(directory: dir, payloadBytes: size, perSync: options.batch)
            var warm = Tally()
            try timed(&warm, w, seconds: 0.2, payload: size)
            var t = Tally()
            try timed(&t, w, seconds: options.seconds, payload: size)
            w.close()
            let walBytes = treeBytes(dir + "/wal")
            removeTree(dir)
            let entriesTotal = w.written
            print(
                "    \(padLeft(sizeLabel(size), 7)): \(padLeft(fixed(t.entriesPerSecond, 0), 9)) entries/s, \(padLeft(fixed(t.syncsPerSecond, 0), 7)) syncs/s, \(padLeft(fixed(t.megabytesPerSecond, 2), 7)) MB/s payload, \(fixed(Double(walBytes) / Double(entriesTotal) * t.entriesPerSecond / 1e6, 2)) MB/s written to the WAL"
            )
            print("             per batch: \(latencyText(t)); \(splitText(t))")
            print("             at the median batch latency: \(grouped(Int((Double(options.batch) / t.percentileMicros(0.5) * 1e6).rounded()))) entries/s")
            batchTallies.append(t)
        }
        print("")
        return batchTallies
    }

    /// Prints whether each target was met; `true` if one was missed.
    static func judgeTargets(_ options: Options, unbatched: Unbatched, batched batchTallies: [Tally]) -> Bool {
        let rawTally = unbatched.baseline
        let singleTallies = unbatched.single
        var missed = false
        print("Targets")
        for (k, size) in options.sizes.enumerated() {
            // The median of the per-round ratios: a burst of outside disk traffic during one
            // slice moves it far less than it moves the totals.
            let pct = pairedPercent(singleTallies[k], rawTally)
            let ok = pct >= 90
            missed = missed || !ok
            print("  \(ok ? "[met]   " : "[MISSED]") (b) \(sizeLabel(size)) entries, no batching: >= 90% of the raw fdatasync rate (\(options.rawRecord) B records; median of \(options.rounds) rounds): \(fixed(pct, 1))%")
            if !ok {
                let record = unbatched.walRecord[k]
                let sized = pairedPercent(singleTallies[k], unbatched.raw(record: record, preallocated: false))
                print("           against raw fdatasync of the same \(record) B records FileLogStorage writes: \(fixed(sized, 1))%")
            }
        }
        if let k = options.sizes.firstIndex(of: 16), options.batch > 1 {
            let rate = batchTallies[k].entriesPerSecond
            let ok = rate >= 1_000_000
            missed = missed || !ok
            print("  \(ok ? "[met]   " : "[MISSED]") (c) 16 B entries, \(grouped(options.batch)) per sync: >= 1,000,000 durable entries/s (sustained over \(fixed(options.seconds, 1)) s): \(grouped(Int(rate.rounded())))")
        }
        return missed
    }
}
