// A write-ahead-log writer for the SIGKILL crash test (Tests/RaftTests/CrashKillTests.swift).
//
//     raft-crash-writer <directory> [seed]
//
// Opens `FileLogStorage(directory:voters:[1])` with 64 KiB segments (so segments roll often) and
// writes batches forever, until it is killed. Every entry's kind and data are a function of its
// index and term only (`CrashPayload`), so the parent can check what it reads back without
// being told the bytes. On start it continues from whatever it recovers.
//
// Protocol on stdout, one line per event, each written with a single write(2) so a kill never
// leaves half a line:
//
//     start <lastIndex> <lastTerm> <hardStateTerm> <hardStateCommit>    after opening
//     begin <first> <last> <term> <hs> <hsTerm> <hsCommit>               before append/sync
//     durable <first> <last> <term> <hsTerm> <hsCommit>                  after sync() returned
//
// A `begin` line announces the batch about to be written: entries `first...last` of `term`
// (when `first` is at or below the current last index, the batch replaces that suffix), and,
// when `hs` is 1, the hard state `(hsTerm, vote 1, hsCommit)` buffered after the entries. The
// `durable` line acknowledges it: everything up to there survives any crash. Errors go to
// stderr and exit with status 1.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Raft

/// SplitMix64: small, fast, and the same everywhere.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform enough in `range` for a test (modulo bias is irrelevant here).
    mutating func next(in range: ClosedRange<UInt64>) -> UInt64 {
        range.lowerBound + next() % (range.upperBound - range.lowerBound + 1)
    }
}

/// The content of entry `(index, term)`: a no-op one time in 16, otherwise a command of
/// 0...4096 bytes. Keep in sync with the copy in CrashKillTests.swift.
enum CrashPayload {
    static func entry(index: UInt64, term: UInt64) -> LogEntry {
        var g = SplitMix64(seed: index &* 0xD1B5_4A32_D192_ED03 ^ term &* 0x8CB9_2BA7_2F3D_8DD7)
        let h = g.next()
        if h % 16 == 0 { return LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: index), kind: .noop) }
        let size = Int((h >> 8) % 4097)
        var data = [UInt8](repeating: 0, count: size)
        data.withUnsafeMutableBytes { raw in
            var k = 0
            while k < size {
                var v = g.next()
                for _ in 0..<min(8, size - k) {
                    raw[k] = UInt8(truncatingIfNeeded: v)
                    v >>= 8
                    k += 1
                }
            }
        }
        return LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: index), kind: .command, data: data)
    }
}

func emit(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    bytes.withUnsafeMutableBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(1, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                exit(2)  // the parent is gone
            }
            done += n
        }
    }
}

func fail(_ message: String) -> Never {
    var bytes = Array("raft-crash-writer: \(message)\n".utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress!, $0.count) }
    exit(1)
}

let args = CommandLine.arguments
guard args.count >= 2 else { fail("usage: raft-crash-writer <directory> [seed]") }
let directory = args[1]
var seed = UInt64(UInt32(truncatingIfNeeded: getpid())) << 32 ^ UInt64(UInt32(truncatingIfNeeded: time(nil)))
if args.count >= 3 {
    guard let s = UInt64(args[2]) else { fail("seed must be an unsigned integer, got \(args[2])") }
    seed = s
}

var options = FileLogStorageOptions()
options.segmentBytes = 64 << 10

do throws(RaftError) {
    let storage = try FileLogStorage(directory: directory, voters: [1], options: options)
    var rng = SplitMix64(seed: seed)
    var last = storage.lastIndex().rawValue
    let lastTerm = try storage.term(at: storage.lastIndex()).rawValue
    var hard = storage.currentHardState
    var term = max(lastTerm, hard.term.rawValue, 1)
    emit("start \(last) \(lastTerm) \(hard.term.rawValue) \(hard.commit.rawValue)")

    while true {
        let count = rng.next(in: 1...50)
        var first = last + 1
        var batchTerm = term
        // One batch in eight replaces a suffix above the commit index, in a new term (what a
        // follower does when a new leader overwrites its uncommitted entries).
        let commit = hard.commit.rawValue
        if last > commit && rng.next() % 8 == 0 {
            first = rng.next(in: (commit + 1)...last)
            term += 1
            batchTerm = term
        }
        let batchLast = first + count - 1
        // One batch in four also records a hard state: the current term, voted for 1, commit
        // moved forward somewhere up to the batch's last entry.
        var newHard: HardState?
        if rng.next() % 4 == 0 {
            let c = rng.next(in: commit...batchLast)
            newHard = HardState(term: Term(rawValue: term), vote: 1, commit: LogIndex(rawValue: c))
        }
        let entries = (first...batchLast).map { CrashPayload.entry(index: $0, term: batchTerm) }
        let h = newHard ?? hard
        emit("begin \(first) \(batchLast) \(batchTerm) \(newHard == nil ? 0 : 1) \(h.term.rawValue) \(h.commit.rawValue)")
        try storage.append(entries)
        if let newHard { try storage.setHardState(newHard) }
        try storage.sync()
        guard storage.durableLastIndex.rawValue == batchLast else {
            fail("durableLastIndex is \(storage.durableLastIndex) after syncing up to \(batchLast)")
        }
        last = batchLast
        hard = h
        emit("durable \(first) \(batchLast) \(batchTerm) \(hard.term.rawValue) \(hard.commit.rawValue)")
    }
} catch {
    fail("\(error)")
}
