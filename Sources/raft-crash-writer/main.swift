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
import RaftTestKit

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
    var rng = SeededGenerator(seed: seed)
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
