import Raft
import RaftTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Power loss at seeded points of a storage workload (appends, suffix truncations, hard
/// states, segment rolls, snapshots, compactions, snapshot installs). After every crash the
/// storage must reopen and hold exactly the acknowledged state plus, possibly, a prefix of what
/// was written after it: nothing acknowledged missing, nothing never written present.
@Suite("Storage crash points")
struct StorageCrashTests {
    /// The log as the workload believes it, record by record.
    struct Model: Equatable {
        var baseIndex: LogIndex = .zero
        var baseTerm: Term = .zero
        var entries: [LogEntry] = []
        var hard = HardState()

        var last: LogIndex { baseIndex + UInt64(entries.count) }

        func term(_ i: LogIndex) -> Term? {
            if i == baseIndex { return baseTerm }
            if i < baseIndex || i > last { return nil }
            return entries[baseIndex.distance(to: i) - 1].term
        }

        mutating func apply(_ op: Op) {
            switch op {
            case .entry(let e):
                if e.index <= baseIndex { return }
                entries.removeSubrange((baseIndex.distance(to: e.index) - 1)...)
                entries.append(e)
            case .hard(let h):
                hard = h
            case .base(let index, let term, let reset):
                if reset {
                    entries = []
                } else {
                    entries.removeFirst(baseIndex.distance(to: index))
                }
                baseIndex = index
                baseTerm = term
            }
        }
    }

    enum Op {
        case entry(LogEntry)
        case hard(HardState)
        case base(LogIndex, Term, reset: Bool)
    }

    static let crashPoints = Int(SimulationTests.env("RAFT_CRASH_POINTS") ?? "") ?? 600

    @Test("power loss at seeded points", arguments: 0..<8)
    func powerLoss(shard: Int) throws {
        var seed = UInt64(shard)
        var interrupted: Set<String> = []
        while seed < UInt64(Self.crashPoints) {
            if let what = try Self.run(seed: seed) { interrupted.insert(what) }
            seed += 8
        }
        // The cuts must land in every kind of operation: appends and syncs of segments, segment
        // creation (roll), snapshot writes and renames, removals (compaction), directory syncs.
        let kinds = ["write /data/wal", "sync /data/wal", "create /data/wal", "write /data/snap", "rename /data/snap",
                     "remove /data/wal", "sync directory /data/wal", "sync directory /data/snap"]
        let missed = kinds.filter { k in !interrupted.contains { $0.hasPrefix(k) } }
        if Self.crashPoints >= 600 {
            #expect(missed.count <= 2, "power cuts never interrupted: \(missed)")
        }
    }

    /// Seeds that once failed, run on every test run whatever `RAFT_CRASH_POINTS` says.
    /// 7878 and 8940: the last synced batch's final record reached 7 and 2 bytes into a
    /// sector of the unsynced batch that never arrived (later sectors did); recovery refused
    /// to open instead of cutting the torn tail.
    @Test("power-loss seeds that once failed", arguments: [7878, 8940] as [UInt64])
    func formerFailures(seed: UInt64) throws {
        try Self.run(seed: seed)
    }

    static func options() -> FileLogStorageOptions {
        var o = FileLogStorageOptions()
        o.segmentBytes = 4096
        o.cachedEntries = 8
        o.keepSnapshots = 2
        return o
    }

    /// Runs one seed; returns the operation the power cut interrupted.
    @discardableResult
    static func run(seed: UInt64) throws -> String? {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9 &+ 1)
        let fs = SimulatedFileSystem()
        let dir = "/data"
        var acked = Model()
        var pending: [Op] = []
        var term: UInt64 = 1
        var snapshotIndex: LogIndex = .zero
        // Snapshot files on disk, oldest first (pruned to keepSnapshots, as the snapshotter does).
        var snapshots: [LogIndex] = []
        let s = try FileLogStorage(directory: dir, voters: [1, 2, 3], options: options(), fileSystem: fs)
        // Crash somewhere in the first few hundred file operations.
        fs.failAfter(operations: 1 + Int(rng.next() % 400))
        var model = acked
        func rand(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
        do {
            while true {
                switch rand(12) {
                case 0...4:
                    var start = model.last + 1
                    let floor = max(snapshotIndex, model.hard.commit, model.baseIndex) + 1
                    if rand(5) == 0 && model.last >= floor {
                        // A new leader's entries replace an uncommitted suffix.
                        start = floor + UInt64(rand(floor.distance(to: model.last) + 1))
                        term += 1
                    }
                    let n = 1 + rand(12)
                    let batch = (0..<n).map { k in
                        LogEntry(
                            term: Term(rawValue: term), index: start + UInt64(k),
                            data: (0..<rand(300)).map { UInt8(truncatingIfNeeded: $0 &+ k &+ Int(term)) })
                    }
                    for e in batch { pending.append(.entry(e)); model.apply(.entry(e)) }
                    try s.append(batch)
                case 5:
                    let h = HardState(term: Term(rawValue: term), vote: NodeID(rawValue: UInt64(1 + rand(3))),
                                      commit: max(model.hard.commit, model.baseIndex + UInt64(rand(model.baseIndex.distance(to: model.last) + 1))))
                    pending.append(.hard(h))
                    model.apply(.hard(h))
                    try s.setHardState(h)
                case 6...8:
                    try s.sync()
                    acked = model
                    pending = []
                case 9, 10:
                    // Snapshot at a durable index, then compact behind it.
                    guard s.durableLastIndex > max(snapshotIndex, model.baseIndex) else { continue }
                    let lo = max(snapshotIndex, model.baseIndex)
                    let at = lo + UInt64(1 + rand(lo.distance(to: s.durableLastIndex)))
                    try s.createSnapshot(at: at, data: [UInt8](repeating: UInt8(truncatingIfNeeded: at.rawValue), count: rand(3000)))
                    snapshotIndex = at
                    snapshots = Array((snapshots + [at]).suffix(options().keepSnapshots))
                    if model.hard.commit < at {
                        // Raft snapshots only applied (so committed) entries.
                        let h = HardState(term: model.hard.term, vote: model.hard.vote, commit: at)
                        pending.append(.hard(h))
                        model.apply(.hard(h))
                        try s.setHardState(h)
                    }
                    var upTo = at.rawValue > 3 ? at - 3 : at
                    // Never past the oldest kept snapshot at or after the compaction point.
                    if let oldest = snapshots.first(where: { $0 >= model.baseIndex }) { upTo = min(upTo, oldest) }
                    if upTo > model.baseIndex {
                        let op = Op.base(upTo, model.term(upTo)!, reset: false)
                        pending.append(op)
                        model.apply(op)
                        try s.compact(upTo: upTo)
                        acked = model
                        pending = []
                    }
                default:
                    // A snapshot from a leader, past our log.
                    term += 1
                    let at = model.last + UInt64(1 + rand(5))
                    let meta = SnapshotMetadata(index: at, term: Term(rawValue: term), confState: ConfState(voters: [1, 2, 3]))
                    let resetOp = Op.base(at, Term(rawValue: term), reset: true)
                    pending.append(resetOp)
                    model.apply(resetOp)
                    if model.hard.commit < at || model.hard.term < meta.term {
                        let h = HardState(
                            term: max(model.hard.term, meta.term), vote: meta.term > model.hard.term ? .none : model.hard.vote,
                            commit: max(model.hard.commit, at))
                        pending.append(.hard(h))
                        model.apply(.hard(h))
                    }
                    try s.applySnapshot(Snapshot(metadata: meta, data: [7, 7, UInt8(truncatingIfNeeded: at.rawValue)]))
                    snapshotIndex = at
                    snapshots = Array((snapshots + [at]).suffix(options().keepSnapshots))
                    acked = model
                    pending = []
                }
            }
        } catch {
            guard fs.isDead else {
                Issue.record("seed \(seed): storage failed without a power cut: \(error)")
                return nil
            }
        }
        fs.powerLoss(seed: seed)
        let reopened: FileLogStorage
        do {
            reopened = try FileLogStorage(directory: dir, voters: [1, 2, 3], options: options(), fileSystem: fs)
        } catch {
            Issue.record("seed \(seed): storage did not reopen after power loss: \(error)\n\(Self.dump(fs, dir))")
            return nil
        }
        let recovered = try Self.read(reopened)
        // Nothing committed is lost, so the hard state never commits past the recovered log.
        #expect(reopened.recovery.lostCommittedEntries == nil, "seed \(seed): \(reopened.recovery)")
        // Valid outcomes: the acknowledged state plus any prefix of the later records.
        var candidate = acked
        var candidates = [candidate]
        for op in pending {
            candidate.apply(op)
            candidates.append(candidate)
        }
        if let kept = reopened.recovery.restoredHardState {
            // A cut tail never lowers the term or the vote: recovery keeps the highest hard
            // state it cut (one that was written, never an invented one) over the log it kept,
            // with the commit index of the hard state before the cut.
            let written = pending.contains { op in
                if case .hard(let h) = op { return h.term == kept.term && h.vote == kept.vote }
                return false
            }
            #expect(written, "seed \(seed): restored hard state \(kept) was never written")
            candidates = candidates.map { c in
                var c = c
                c.hard = HardState(term: kept.term, vote: kept.vote, commit: c.hard.commit)
                return c
            }
        }
        if !candidates.contains(where: { Self.same($0, recovered) }) {
            Issue.record(
                """
                seed \(seed): recovered log matches no acknowledged-plus-prefix state \
                (recovered base \(recovered.baseIndex)/\(recovered.baseTerm), last \(recovered.last), hard \(recovered.hard); \
                acked base \(acked.baseIndex), last \(acked.last), hard \(acked.hard); \(pending.count) pending records)
                replay: RAFT_CRASH_SEED=\(seed) swift test --filter StorageCrashTests/replay
                candidates: \(candidates.map { "\($0.baseIndex)/\($0.baseTerm)..\($0.last) \($0.hard)" })
                recovery: \(reopened.recovery)
                \(Self.dump(fs, dir))
                """)
            return nil
        }
        // The log must take new writes, durably.
        let next = LogEntry(term: Term(rawValue: term + 1), index: recovered.last + 1, data: [42])
        try reopened.append([next])
        try reopened.sync()
        reopened.close()
        let again = try FileLogStorage(directory: dir, voters: [1, 2, 3], options: options(), fileSystem: fs)
        #expect(again.lastIndex() == next.index, "seed \(seed)")
        #expect(try again.entries(in: next.index..<(next.index + 1), maxBytes: .max) == [next], "seed \(seed)")
        return fs.interrupted
    }

    /// Compares what matters: compaction point, every held entry, and the hard state (the
    /// recovered commit may be higher: a completed snapshot install raises it).
    static func same(_ m: Model, _ r: Model) -> Bool {
        m.baseIndex == r.baseIndex && m.baseTerm == r.baseTerm && m.entries == r.entries && m.hard.term == r.hard.term
            && m.hard.vote == r.hard.vote && m.hard.commit == r.hard.commit
    }

    static func read(_ s: FileLogStorage) throws -> Model {
        var m = Model()
        m.baseIndex = s.firstIndex() - 1
        m.baseTerm = try s.term(at: m.baseIndex)
        m.entries = s.lastIndex() >= s.firstIndex() ? try s.entries(in: s.firstIndex()..<(s.lastIndex() + 1), maxBytes: .max) : []
        m.hard = s.currentHardState
        return m
    }

    /// The records of every segment, one line per segment, for failure reports.
    static func dump(_ fs: SimulatedFileSystem, _ dir: String) -> String {
        var out: [String] = []
        for name in (try? fs.contentsOfDirectory(dir + "/wal")) ?? [] {
            guard let b = fs.contents(dir + "/wal/" + name) else { continue }
            var pos = 24
            var items: [String] = []
            while pos + 9 <= b.count {
                let len = Int(b[pos]) | Int(b[pos + 1]) << 8 | Int(b[pos + 2]) << 16 | Int(b[pos + 3]) << 24
                if len == 0 || pos + 8 + len > b.count { items.append("torn@\(pos)"); break }
                let t = b[pos + 8]
                func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
                switch t {
                case 1: items.append("e\(u64(pos + 17))/\(u64(pos + 9))")
                case 2: items.append("hs(c\(u64(pos + 25)))")
                case 3: items.append("base\(b[pos + 25] == 1 ? "!" : "")\(u64(pos + 9))")
                default: items.append("?\(t)")
                }
                pos += 8 + len
            }
            out.append("\(name) [\(b.count) bytes]: " + items.joined(separator: " "))
        }
        out.append("snap: " + ((try? fs.contentsOfDirectory(dir + "/snap")) ?? []).joined(separator: " "))
        return out.joined(separator: "\n")
    }

    /// Replays one seed: `RAFT_CRASH_SEED=<seed> swift test --filter StorageCrashTests/replay`.
    @Test func replay() throws {
        guard let v = SimulationTests.env("RAFT_CRASH_SEED"), let seed = UInt64(v) else { return }
        try Self.run(seed: seed)
    }
}
