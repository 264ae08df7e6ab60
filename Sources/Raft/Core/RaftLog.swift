/// The log as the core sees it: durable entries in ``LogStorage`` followed by unstable entries
/// in memory, plus the commit and apply positions.
///
/// Invariant: `firstIndex() - 1 <= applied <= applying <= committed <= lastIndex()`.
/// Invariant: `committed` never decreases while the core lives.
struct RaftLog {
    let storage: any LogStorage
    var unstable: UnstableLog
    /// Highest index known to be committed.
    var committed: LogIndex
    /// Highest index handed out in a `Ready` for application.
    var applying: LogIndex
    /// Highest index the application reported applied (through `advance`).
    var applied: LogIndex
    /// Byte budget for committed entries in one `Ready` (0 = unlimited).
    let maxCommittedBytes: Int

    init(storage: any LogStorage, maxCommittedBytes: Int) {
        self.storage = storage
        // A restarted state machine is restored from the latest snapshot, which may lie past
        // the first retained entry (logs keep a trail of entries behind a snapshot).
        let snapshotIndex = storage.snapshotMetadata().index
        let start = max(storage.firstIndex() - 1, min(snapshotIndex, storage.lastIndex()))
        unstable = UnstableLog(offset: storage.lastIndex() + 1)
        committed = start
        applying = start
        applied = start
        self.maxCommittedBytes = maxCommittedBytes
    }

    func firstIndex() -> LogIndex { unstable.firstIndexFromSnapshot ?? storage.firstIndex() }

    func lastIndex() -> LogIndex { unstable.lastIndex ?? storage.lastIndex() }

    /// The last index the storage holds durably (and that the unstable part does not replace).
    var stableLastIndex: LogIndex {
        if unstable.snapshot != nil { return unstable.offset - 1 }
        return min(unstable.offset - 1, storage.lastIndex())
    }

    func term(at index: LogIndex) throws(RaftError) -> Term {
        let dummy = firstIndex() - 1
        if index < dummy { throw RaftError(.compacted, "entry \(index) was compacted") }
        if index > lastIndex() { throw RaftError(.unavailable, "entry \(index) is past the last index") }
        if let t = unstable.term(at: index) { return t }
        return try storage.term(at: index)
    }

    /// The term at `index`, or `nil` when it is not held. Unlike ``term(at:)`` it builds no
    /// error: the replication hot path asks this for every append.
    func termIfHeld(_ index: LogIndex) -> Term? {
        if index < firstIndex() - 1 || index > lastIndex() { return nil }
        if let t = unstable.term(at: index) { return t }
        return try? storage.term(at: index)
    }

    /// The term at `index`, or zero when it is not held.
    func termOrZero(_ index: LogIndex) -> Term { termIfHeld(index) ?? .zero }

    var lastTerm: Term { termOrZero(lastIndex()) }

    func matchTerm(_ index: LogIndex, _ term: Term) -> Bool { termIfHeld(index) == term }

    /// Whether a candidate whose log ends at (`index`, `term`) is at least as up to date as this
    /// log (§5.4.1).
    func isUpToDate(index: LogIndex, term: Term) -> Bool {
        let lt = lastTerm
        return term > lt || (term == lt && index >= lastIndex())
    }

    enum AppendOutcome {
        case appended(lastNew: LogIndex)
        case mismatch
        /// The leader's entries contradict a committed entry: safety is already broken elsewhere
        /// (a corrupted or misbehaving peer). The message is ignored rather than crashing.
        case conflictsWithCommitted(LogIndex)
    }

    /// The consistency check and append of §5.3: if the entry at `prevIndex` has `prevTerm`, drop
    /// any conflicting suffix, append what is new and return the last index the message covers.
    mutating func maybeAppend(prevIndex: LogIndex, prevTerm: Term, entries: [LogEntry]) -> AppendOutcome {
        guard matchTerm(prevIndex, prevTerm) else { return .mismatch }
        let lastNew = prevIndex + UInt64(entries.count)
        let conflict = findConflict(entries)
        if conflict != .zero {
            if conflict <= committed { return .conflictsWithCommitted(conflict) }
            let start = prevIndex.distance(to: conflict) - 1
            unstable.truncateAndAppend(start == 0 ? entries : Array(entries[start...]))
        }
        return .appended(lastNew: lastNew)
    }

    /// The index of the first entry in `entries` that is missing or has a different term here,
    /// or zero if all are already present.
    func findConflict(_ entries: [LogEntry]) -> LogIndex {
        for e in entries where !matchTerm(e.index, e.term) { return e.index }
        return .zero
    }

    /// The largest index at or below `index` whose term is at most `term`, with its term: the
    /// first position where this log may agree with another log that has `term` at `index`.
    func findConflictByTerm(_ index: LogIndex, _ term: Term) -> (index: LogIndex, term: Term) {
        var i = index
        while true {
            guard let t = termIfHeld(i) else { return (i, .zero) }
            if t <= term { return (i, t) }
            if i == .zero { return (i, t) }
            i = i - 1
        }
    }

    /// Appends entries created by this node as leader.
    mutating func append(_ entries: [LogEntry]) { unstable.truncateAndAppend(entries) }

    /// Entries in `lo..<hi`, at most `maxBytes` (at least one), from storage and memory.
    func slice(_ lo: LogIndex, _ hi: LogIndex, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        if lo >= hi { return [] }
        if lo < firstIndex() { throw RaftError(.compacted, "entry \(lo) was compacted") }
        if hi > lastIndex() + 1 { throw RaftError(.unavailable, "entry \(hi - 1) is past the last index") }
        var result: [LogEntry] = []
        var budget = maxBytes
        if lo < unstable.offset {
            let stableHi = min(hi, unstable.offset)
            result = try storage.entries(in: lo..<stableHi, maxBytes: maxBytes)
            if result.count < lo.distance(to: stableHi) { return result }
            for e in result { budget -= e.byteSize }
        }
        if hi > unstable.offset {
            let part = unstable.slice(max(lo, unstable.offset), hi)
            if result.isEmpty {
                result.reserveCapacity(part.count)
            }
            for e in part {
                budget -= e.byteSize
                if budget < 0 && !result.isEmpty { break }
                result.append(e)
            }
        }
        return result
    }

    /// Committed entries not yet handed out for application.
    func nextCommittedEntries() -> [LogEntry] {
        let lo = max(applying + 1, firstIndex())
        let hi = committed + 1
        if lo >= hi { return [] }
        return (try? slice(lo, hi, maxBytes: maxCommittedBytes == 0 ? Int.max : maxCommittedBytes)) ?? []
    }

    var hasNextCommittedEntries: Bool { max(applying + 1, firstIndex()) <= committed }

    /// Raises the commit index; never lowers it, never past the last index.
    mutating func commitTo(_ index: LogIndex) {
        if index > committed { committed = min(index, lastIndex()) }
    }

    mutating func appliedTo(_ index: LogIndex) {
        if index > applied { applied = index }
        if index > applying { applying = index }
    }

    /// Installs a snapshot from the leader: everything up to its index is committed.
    mutating func restore(_ s: Snapshot) {
        committed = s.metadata.index
        unstable.restore(s)
    }

    func snapshot() throws(RaftError) -> Snapshot {
        if let s = unstable.snapshot { return s }
        return try storage.snapshot()
    }
}
