/// The log as the core sees it: durable entries in ``LogStorage`` followed by unstable entries
/// in memory, plus the commit and apply positions.
///
/// Invariant: `firstIndex() - 1 <= applied <= applying <= committed <= lastIndex()`.
/// Invariant: `committed` never decreases while the core lives.
///
/// Every read that reaches ``LogStorage`` throws what the storage threw (with what was being
/// read): a storage that cannot read an entry it holds is broken, and treating the failure as
/// "not held" would hand out an empty batch forever or grant a vote on a wrong up-to-date check.
/// "Not held" (compacted, past the end) is answered from the indexes, without asking storage.
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
        return try storedTerm(index)
    }

    /// The term at `index` from storage, which must hold it.
    func storedTerm(_ index: LogIndex) throws(RaftError) -> Term {
        do { return try storage.term(at: index) } catch {
            throw RaftLog.storageFailure(error, reading: "the term of entry \(index)")
        }
    }

    /// A storage error on a read the log's indexes say must succeed, saying what was read. Its
    /// code stays the storage's (`io`, `corruption`), except that "compacted" or "unavailable"
    /// for an entry the storage claims to hold is a broken storage (`storage`).
    static func storageFailure(_ error: RaftError, reading what: String) -> RaftError {
        let code: RaftError.Code = error.code == .compacted || error.code == .unavailable ? .storage : error.code
        return RaftError(code, "reading \(what) from storage failed: \(error.message)")
    }

    /// The term at `index`, or `nil` when it is not held (compacted or past the end). A storage
    /// failure throws. Unlike ``term(at:)`` it builds no error for "not held": the replication
    /// hot path asks this for every append.
    func termIfHeld(_ index: LogIndex) throws(RaftError) -> Term? {
        if index < firstIndex() - 1 || index > lastIndex() { return nil }
        if let t = unstable.term(at: index) { return t }
        return try storedTerm(index)
    }

    /// The term at `index`, or zero when it is not held.
    func termOrZero(_ index: LogIndex) throws(RaftError) -> Term { try termIfHeld(index) ?? .zero }

    func lastTerm() throws(RaftError) -> Term { try termOrZero(lastIndex()) }

    func matchTerm(_ index: LogIndex, _ term: Term) throws(RaftError) -> Bool { try termIfHeld(index) == term }

    /// Whether a candidate whose log ends at (`index`, `term`) is at least as up to date as this
    /// log (§5.4.1).
    func isUpToDate(index: LogIndex, term: Term) throws(RaftError) -> Bool {
        let lt = try lastTerm()
        return term > lt || (term == lt && index >= lastIndex())
    }

    enum AppendOutcome {
        /// `from`: the first index written (entries from there on replaced or extended the
        /// log), `nil` if every entry was already held.
        case appended(lastNew: LogIndex, from: LogIndex?)
        case mismatch
        /// The leader's entries contradict a committed entry: safety is already broken elsewhere
        /// (a corrupted or misbehaving peer). The message is ignored rather than crashing.
        case conflictsWithCommitted(LogIndex)
    }

    /// The consistency check and append of §5.3: if the entry at `prevIndex` has `prevTerm`, drop
    /// any conflicting suffix, append what is new and return the last index the message covers.
    mutating func maybeAppend(prevIndex: LogIndex, prevTerm: Term, entries: [LogEntry]) throws(RaftError) -> AppendOutcome {
        guard try matchTerm(prevIndex, prevTerm) else { return .mismatch }
        let lastNew = prevIndex + UInt64(entries.count)
        let conflict = try findConflict(entries)
        if conflict != .zero {
            if conflict <= committed { return .conflictsWithCommitted(conflict) }
            let start = prevIndex.distance(to: conflict) - 1
            unstable.truncateAndAppend(start == 0 ? entries : Array(entries[start...]))
            return .appended(lastNew: lastNew, from: conflict)
        }
        return .appended(lastNew: lastNew, from: nil)
    }

    /// The index of the first entry in `entries` that is missing or has a different term here,
    /// or zero if all are already present.
    func findConflict(_ entries: [LogEntry]) throws(RaftError) -> LogIndex {
        for e in entries where try !matchTerm(e.index, e.term) { return e.index }
        return .zero
    }

    /// The largest index at or below `index` whose term is at most `term`, with its term: the
    /// first position where this log may agree with another log that has `term` at `index`.
    func findConflictByTerm(_ index: LogIndex, _ term: Term) throws(RaftError) -> (index: LogIndex, term: Term) {
        var i = index
        while true {
            guard let t = try termIfHeld(i) else { return (i, .zero) }
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
            do { result = try storage.entries(in: lo..<stableHi, maxBytes: maxBytes) } catch {
                throw RaftLog.storageFailure(error, reading: "entries \(lo)...\(stableHi - 1)")
            }
            // The protocol promises at least one entry, starting at `lo`: anything else would hand
            // out an empty or misplaced batch while the log still has work (a loop that spins).
            guard let first = result.first, first.index == lo, result.count <= lo.distance(to: stableHi) else {
                throw RaftError(
                    .storage,
                    "storage returned \(result.count) entries starting at \(result.first.map { "\($0.index)" } ?? "none") for entries \(lo)...\(stableHi - 1): it must return at least one, from \(lo)")
            }
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

    /// Committed entries not yet handed out for application; at least one when
    /// ``hasNextCommittedEntries``, or a storage failure.
    func nextCommittedEntries() throws(RaftError) -> [LogEntry] {
        let lo = max(applying + 1, firstIndex())
        let hi = committed + 1
        if lo >= hi { return [] }
        return try slice(lo, hi, maxBytes: maxCommittedBytes == 0 ? Int.max : maxCommittedBytes)
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
    mutating func restore(_ s: InstallSnapshot) {
        committed = s.metadata.index
        unstable.restore(s)
    }

    /// The latest snapshot with its bytes. (A snapshot not yet persisted is never sent on: only
    /// a follower holds one, and it cannot lead until it persisted it.)
    func snapshot() throws(RaftError) -> Snapshot {
        do { return try storage.snapshot() } catch {
            throw RaftLog.storageFailure(error, reading: "the latest snapshot")
        }
    }

    /// The latest snapshot's metadata, without reading its data.
    func snapshotMetadata() -> SnapshotMetadata { unstable.snapshot?.metadata ?? storage.snapshotMetadata() }
}
