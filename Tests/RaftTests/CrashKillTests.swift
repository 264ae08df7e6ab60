import Foundation
import Raft
import RaftTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Real crashes: the `raft-crash-writer` executable writes a ``FileLogStorage`` in a loop and is
/// killed with SIGKILL at a random moment, again and again, on the same directory and on fresh
/// ones. After every kill the directory is opened in this process and checked against what the
/// writer acknowledged on stdout (see Sources/raft-crash-writer/main.swift for the protocol).
///
/// SIGKILL loses nothing the kernel already accepted (the page cache survives the process), so
/// this tests the process-crash half of the durability contract: recovery of torn tails, of a
/// segment whose header was being written, of a kill during recovery itself, and that
/// everything acknowledged as durable is there, byte for byte. Power loss is the
/// `SimulatedFileSystem`'s job.
@Suite("Crash: SIGKILL the log writer")
struct CrashKillTests {
    static let iterations = 30
    /// A fresh directory every this many kills; in between the writer restarts on the same one.
    static let killsPerDirectory = 6

    @Test(.timeLimit(.minutes(2)))
    func sigkillDuringWritesLosesNothingAcknowledged() throws {
        let writer = try #require(
            Self.writerExecutable(),
            "raft-crash-writer is not next to the test binary: `swift build --build-tests` or `swift test` builds it")
        let baseSeed = ProcessInfo.processInfo.environment["RAFT_CRASH_SEED"].flatMap { UInt64($0) } ?? 0x5EED_C0DE
        var rng = SeededGenerator(seed: baseSeed)
        var stats = CrashStats()
        let clock = ContinuousClock()
        let started = clock.now
        var dir: TempDirectory?
        var model = CrashLogModel()

        for iteration in 0..<Self.iterations {
            if iteration % Self.killsPerDirectory == 0 {
                dir = TempDirectory()
                model = CrashLogModel()
            }
            let path = dir!.path + "/log"
            // One kill in five comes 0-15 ms after the spawn, while the writer is starting up,
            // creating the first segment or recovering; the others 20-200 ms into the writes.
            let early = iteration % 5 == 4
            let delayMs = early ? rng.next(in: 0...15) : rng.next(in: 20...200)
            let context = "seed \(baseSeed), iteration \(iteration), delay \(delayMs) ms, directory \(path)"
            let run = try Self.runAndKill(writer: writer, directory: path, seed: rng.next(), delayMs: delayMs, early: early)
            guard run.killed else {
                Issue.record("the writer exited on its own (\(run.exitDescription)) instead of being killed; stderr: \(run.stderr) [\(context)]")
                return
            }
            stats.kills += 1
            if !run.sawStart { stats.killsBeforeStart += 1 }

            // Replay the acknowledged history.
            var inflight: CrashBatch?
            do {
                inflight = try model.replay(run.lines)
            } catch {
                Issue.record("\(error) [\(context)]")
                return
            }
            stats.acknowledgedBatches += run.lines.filter { $0.hasPrefix("durable ") }.count

            // Reopen in this process and compare.
            guard let outcome = try Self.recoverAndCheck(directory: path, model: &model, inflight: inflight, stats: &stats, context: context)
            else { return }
            stats.outcomes[outcome, default: 0] += 1
        }
        let elapsed = clock.now - started
        print(
            "CrashKill: seed \(baseSeed): \(stats.kills) kills (\(stats.killsBeforeStart) before the writer reported its start), "
                + "\(stats.acknowledgedBatches) acknowledged batches, outcomes [\(stats.outcomes.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))], "
                + "torn tails cut \(stats.tornTails), half-written segments removed \(stats.removedSegments), "
                + "largest log \(stats.maxEntries) entries, \(elapsed)")
        #expect(stats.kills >= 20)
    }

    // MARK: Running the writer

    struct WriterRun {
        var lines: [String]
        var killed: Bool
        var sawStart: Bool
        var exitDescription: String
        var stderr: String
    }

    /// Starts the writer on `directory`, kills it with SIGKILL `delayMs` after it reported its
    /// start (or after the spawn when `early`), and returns every complete line it printed.
    ///
    /// The writer is spawned with `posix_spawn` and reaped with `waitpid`, not with Foundation's
    /// `Process`: `Process.waitUntilExit()` waits for a run-loop callback, and a test body runs
    /// on a cooperative thread whose run loop nothing else drives, so it can wait forever for a
    /// child that has already exited. `waitpid` returns once the child is gone, whatever thread
    /// asks.
    static func runAndKill(writer: String, directory: String, seed: UInt64, delayMs: UInt64, early: Bool) throws -> WriterRun {
        let stderrPath = directory + ".stderr"
        let child = try SpawnedChild(executable: writer, arguments: [directory, String(seed)], stderrPath: stderrPath)
        let collector = LineCollector(fd: child.stdoutFD)

        if !early {
            // Wait for the "start" line: the writer has recovered and is about to write.
            _ = collector.waitForFirstLine(withPrefix: "start ", seconds: 20)
        }
        // The kill lands at a random moment; any moment is a valid crash point, so the
        // outcome is checked whatever the delay (it only spreads the crash points).
        usleep(useconds_t(delayMs * 1000))
        let exitedEarly = child.exited()
        let running = exitedEarly == nil
        if running { kill(child.pid, SIGKILL) }
        let status = exitedEarly ?? child.waitForExit()
        let finished = collector.waitForEnd(seconds: 10)
        let lines = collector.completeLines()
        let sawStart = lines.first?.hasPrefix("start ") ?? false
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: stderrPath)
        let killed = running && finished && status.signal == SIGKILL
        return WriterRun(
            lines: lines, killed: killed, sawStart: sawStart,
            exitDescription: "\(status), output closed: \(finished)",
            stderr: stderr)
    }

    /// The writer executable. SwiftPM puts executables and the test binary in the same products
    /// directory (`.build/<triple>/<configuration>/`), and both `swift build --build-tests` and
    /// `swift test` build every product of the package, so it is there whenever the tests are.
    /// `RAFT_CRASH_WRITER` overrides the path.
    static func writerExecutable() -> String? {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["RAFT_CRASH_WRITER"] { return p }
        var dirs: [URL] = []
        // Linux: the test runner is the `.xctest` executable itself.
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        // macOS: the tests are an `.xctest` bundle (a directory) in the products directory.
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
            dirs.append(b.bundleURL.deletingLastPathComponent())
        }
        for d in dirs {
            let p = d.appendingPathComponent("raft-crash-writer").path
            if fm.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    // MARK: Checking

    /// Opens the killed writer's directory, checks it is the acknowledged log or that log with
    /// a prefix of the unacknowledged batch, checks every entry's bytes, then appends and syncs
    /// one more entry. Updates `model` to the recovered log. Returns the outcome's name, or nil
    /// after recording an issue.
    static func recoverAndCheck(
        directory: String, model: inout CrashLogModel, inflight: CrashBatch?, stats: inout CrashStats, context: String
    ) throws -> String? {
        var options = FileLogStorageOptions()
        options.segmentBytes = 64 << 10
        let storage: FileLogStorage
        do {
            storage = try FileLogStorage(directory: directory, voters: [1], options: options)
        } catch {
            Issue.record("reopening after SIGKILL failed: \(error) [\(context)]")
            return nil
        }
        defer { storage.close() }
        if storage.recovery.truncatedTail != nil { stats.tornTails += 1 }
        if storage.recovery.removedEmptySegment != nil { stats.removedSegments += 1 }

        guard storage.firstIndex() == 1 else {
            Issue.record("first index is \(storage.firstIndex()) but nothing was compacted [\(context)]")
            return nil
        }
        let last = storage.lastIndex().rawValue
        guard storage.durableLastIndex.rawValue == last else {
            Issue.record("after reopening, durableLastIndex is \(storage.durableLastIndex) but lastIndex is \(last) [\(context)]")
            return nil
        }
        var terms: [UInt64] = []
        terms.reserveCapacity(Int(last))
        for i in stride(from: 1, through: last, by: 1) { terms.append(try storage.term(at: LogIndex(rawValue: i)).rawValue) }
        let hard = storage.currentHardState
        stats.maxEntries = max(stats.maxEntries, Int(last))

        // Which states may the kill have left? The acknowledged one, or the acknowledged one with
        // the unacknowledged batch partly (a prefix of its entries) or wholly written, its hard
        // state only after all its entries (it is buffered after them).
        var outcome: String?
        if terms == model.terms && hard == model.hard {
            outcome = inflight == nil ? "no batch in flight" : "batch in flight not written"
        } else if let b = inflight, b.first >= 1, b.first - 1 <= UInt64(model.terms.count), last >= b.first, last <= b.last,
            Array(terms[..<Int(b.first - 1)]) == Array(model.terms[..<Int(b.first - 1)]),
            terms[Int(b.first - 1)...].allSatisfy({ $0 == b.term })
        {
            if last < b.last {
                if hard == model.hard { outcome = "batch in flight written in part" }
            } else if b.hard == nil {
                if hard == model.hard { outcome = "batch in flight written" }
            } else if hard == model.hard {
                outcome = "batch in flight written but not its hard state"
            } else if hard == b.hard {
                outcome = "batch in flight written with its hard state"
            }
        }
        guard let outcome else {
            Issue.record(
                """
                recovered log does not match the acknowledged state: recovered last index \(last) \
                (last term \(terms.last ?? 0)), hard state \(hard); acknowledged last index \(model.terms.count) \
                (last term \(model.terms.last ?? 0)), hard state \(model.hard); batch in flight \(inflight.map { "\($0)" } ?? "none"); \
                first differing index \(zip(terms, model.terms).enumerated().first(where: { $0.element.0 != $0.element.1 }).map { $0.offset + 1 } ?? min(terms.count, model.terms.count) + 1); \
                recovery report \(storage.recovery) [\(context)]
                """)
            return nil
        }

        // Every entry, byte for byte (read in chunks to bound memory).
        var next: UInt64 = 1
        while next <= last {
            let upper = min(last + 1, next + 2048)
            let got = try storage.entries(in: LogIndex(rawValue: next)..<LogIndex(rawValue: upper), maxBytes: .max)
            guard got.count == Int(upper - next) else {
                Issue.record("entries(in: \(next)..<\(upper)) returned \(got.count) entries [\(context)]")
                return nil
            }
            for e in got {
                let want = CrashPayload.entry(index: e.index.rawValue, term: terms[Int(e.index.rawValue - 1)])
                if e != want {
                    Issue.record(
                        "entry \(e.index) (term \(e.term), \(e.kind), \(e.data.count) bytes) differs from what the writer wrote (term \(want.term), \(want.kind), \(want.data.count) bytes) [\(context)]"
                    )
                    return nil
                }
            }
            next = upper
        }

        // The storage takes writes again.
        let index = last + 1
        let term = max(terms.last ?? 0, hard.term.rawValue, 1)
        let e = CrashPayload.entry(index: index, term: term)
        try storage.append([e])
        try storage.sync()
        #expect(storage.durableLastIndex.rawValue == index, "\(context)")
        #expect(try storage.entries(in: LogIndex(rawValue: index)..<LogIndex(rawValue: index + 1), maxBytes: .max) == [e], "\(context)")
        model.terms = terms + [term]
        model.hard = hard
        return outcome
    }
}

// MARK: - Model of the log the writer acknowledged

struct CrashBatch: CustomStringConvertible {
    var first: UInt64
    var last: UInt64
    var term: UInt64
    var hard: HardState?
    var description: String { "\(first)...\(last) term \(term)" + (hard.map { ", hard state \($0)" } ?? "") }
}

struct CrashLogModel {
    /// `terms[i - 1]` is the term of entry `i`.
    var terms: [UInt64] = []
    var hard = HardState()

    struct Mismatch: Error, CustomStringConvertible {
        var description: String
    }

    /// Applies the writer's acknowledged batches in `lines`; returns the batch it had begun and
    /// not acknowledged when it was killed, if any.
    mutating func replay(_ lines: [String]) throws -> CrashBatch? {
        var inflight: CrashBatch?
        for line in lines {
            let f = line.split(separator: " ")
            let n = f.dropFirst().map { UInt64($0) }
            guard !n.contains(nil) else { throw Mismatch(description: "unparsable line from the writer: \(line)") }
            let v = n.map { $0! }
            switch (f.first, v.count) {
            case ("start", 4):
                // The writer recovered exactly what this process left.
                let last = UInt64(terms.count)
                if v[0] != last || v[1] != (terms.last ?? 0) || v[2] != hard.term.rawValue || v[3] != hard.commit.rawValue {
                    throw Mismatch(
                        description:
                            "the writer recovered \(line) but the log holds last index \(last), last term \(terms.last ?? 0), hard state \(hard)")
                }
            case ("begin", 6):
                guard inflight == nil, v[0] >= 1, v[0] <= UInt64(terms.count) + 1, v[1] >= v[0] else {
                    throw Mismatch(description: "unexpected \(line) (log ends at \(terms.count))")
                }
                inflight = CrashBatch(
                    first: v[0], last: v[1], term: v[2], hard: v[3] == 1 ? HardState(term: Term(rawValue: v[4]), vote: 1, commit: LogIndex(rawValue: v[5])) : nil)
            case ("durable", 5):
                guard let b = inflight, b.first == v[0], b.last == v[1], b.term == v[2] else {
                    throw Mismatch(description: "\(line) does not acknowledge the batch begun (\(inflight.map { "\($0)" } ?? "none"))")
                }
                terms.removeSubrange(Int(b.first - 1)...)
                terms.append(contentsOf: repeatElement(b.term, count: Int(b.last - b.first + 1)))
                if let h = b.hard { hard = h }
                guard hard.term.rawValue == v[3], hard.commit.rawValue == v[4] else {
                    throw Mismatch(description: "\(line): expected hard state \(hard)")
                }
                inflight = nil
            default:
                throw Mismatch(description: "unexpected line from the writer: \(line)")
            }
        }
        return inflight
    }
}

struct CrashStats {
    var kills = 0
    var killsBeforeStart = 0
    var acknowledgedBatches = 0
    var tornTails = 0
    var removedSegments = 0
    var maxEntries = 0
    var outcomes: [String: Int] = [:]
}

// MARK: - Reading the writer's stdout

/// A child process started with `posix_spawn`: its stdout is a pipe, its stderr a file, its
/// stdin `/dev/null`.
struct SpawnedChild {
    let pid: pid_t
    /// The reading end of the child's stdout (owned by whoever reads it).
    let stdoutFD: Int32

    /// How the child ended.
    struct Status: CustomStringConvertible {
        var exitCode: Int32?
        var signal: Int32?
        var description: String {
            if let signal { return "killed by signal \(signal)" }
            return "exited with status \(exitCode ?? -1)"
        }
    }

    init(executable: String, arguments: [String], stderrPath: String) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw CrashTestError("pipe failed: errno \(errno)") }
        // Close-on-exec on both ends: no other child inherits them; dup2 onto 1 clears the flag.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw CrashTestError("posix_spawn \(executable) failed: \(rc)")
        }
        self.pid = pid
        self.stdoutFD = fds[0]
    }

    /// Reaps the child if it has exited; nil while it runs.
    func exited() -> Status? {
        var raw: Int32 = 0
        guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
        return Self.status(raw)
    }

    /// Reaps the child, blocking until it has exited.
    func waitForExit() -> Status {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR { return Status(exitCode: nil, signal: nil) }
        }
        return Self.status(raw)
    }

    private static func status(_ raw: Int32) -> Status {
        let signal = raw & 0x7f
        return signal == 0 ? Status(exitCode: (raw >> 8) & 0xff, signal: nil) : Status(exitCode: nil, signal: signal)
    }
}

struct CrashTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Collects a pipe's output on a thread of its own, so the writer never blocks on a full pipe.
/// Owns the descriptor and closes it at the end of the output.
final class LineCollector: @unchecked Sendable {
    private let lock = NSCondition()
    private var bytes: [UInt8] = []
    private var ended = false
    private let done = DispatchSemaphore(value: 0)

    init(fd: Int32) {
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                bytes.append(contentsOf: chunk[0..<n])
                lock.broadcast()
                lock.unlock()
            }
            close(fd)
            lock.lock()
            ended = true
            lock.broadcast()
            lock.unlock()
            done.signal()
        }
        thread.start()
    }

    /// Waits (woken by each arriving chunk, not by polling) until the first line starts with
    /// `prefix`, the output ends, or the deadline passes. Returns whether the line arrived.
    func waitForFirstLine(withPrefix prefix: String, seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let nl = bytes.firstIndex(of: 10) { return String(decoding: bytes[..<nl], as: UTF8.self).hasPrefix(prefix) }
            if ended || !lock.wait(until: deadline) { return false }
        }
    }

    /// Waits until the writing end is closed (every process holding it exited).
    func waitForEnd(seconds: Int) -> Bool {
        done.wait(timeout: .now() + .seconds(seconds)) == .success
    }

    /// The complete lines so far (a kill never splits one: each is a single small write).
    func completeLines() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        guard let lastNL = bytes.lastIndex(of: 10) else { return [] }
        return bytes[...lastNL].split(separator: 10).map { String(decoding: $0, as: UTF8.self) }
    }
}
