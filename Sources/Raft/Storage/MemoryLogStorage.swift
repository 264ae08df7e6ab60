/// An in-memory ``LogStorage``: for tests, simulations and benchmarks.
///
/// Everything written to it counts as durable for as long as the object lives; a simulated
/// crash keeps the object (its contents are "on disk") and throws away the core (its memory).
///
/// Invariant: `entries[0]` is a sentinel holding the snapshot's index and term;
/// `entries[i].index == entries[0].index + i`.
public final class MemoryLogStorage: WritableLogStorage {
    private var hardState: HardState
    private var latestSnapshot: Snapshot
    private var entries: [LogEntry]

    /// Creates a storage for a new cluster member whose initial voters are `voters`.
    public init(voters: [NodeID] = []) {
        hardState = HardState()
        latestSnapshot = Snapshot(metadata: SnapshotMetadata(index: .zero, term: .zero, confState: ConfState(voters: voters)))
        entries = [LogEntry(term: .zero, index: .zero, kind: .noop)]
    }

    public func initialState() throws(RaftError) -> (HardState, ConfState) {
        (hardState, latestSnapshot.metadata.confState)
    }

    /// The hard state most recently written.
    public var currentHardState: HardState { hardState }

    /// Records the hard state (the shell calls this when it persists a ``Ready``).
    public func setHardState(_ state: HardState) { hardState = state }

    /// Nothing to do: everything written to memory storage counts as durable at once.
    public func sync() {}

    private var offset: LogIndex { entries[0].index }

    public func firstIndex() -> LogIndex { offset + 1 }

    public func lastIndex() -> LogIndex { offset.advanced(by: entries.count - 1) }

    public func membershipEntries() throws(RaftError) -> [LogEntry] {
        let above = latestSnapshot.metadata.index
        return entries.dropFirst().filter { $0.kind == .membership && $0.index > above }
    }

    public func term(at index: LogIndex) throws(RaftError) -> Term {
        if index < offset { throw RaftError(.compacted, "entry \(index) was compacted; first index is \(offset + 1)") }
        let i = offset.distance(to: index)
        if i >= entries.count { throw RaftError(.unavailable, "entry \(index) is past the last index \(lastIndex())") }
        return entries[i].term
    }

    public func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        if range.lowerBound <= offset {
            throw RaftError(.compacted, "entries from \(range.lowerBound) were compacted; first index is \(offset + 1)")
        }
        if range.upperBound > lastIndex() + 1 {
            throw RaftError(.unavailable, "entries up to \(range.upperBound - 1) requested; last index is \(lastIndex())")
        }
        if range.isEmpty { return [] }
        let lo = offset.distance(to: range.lowerBound)
        var hi = offset.distance(to: range.upperBound)
        var size = entries[lo].byteSize
        var i = lo + 1
        while i < hi {
            size += entries[i].byteSize
            if size > maxBytes { hi = i; break }
            i += 1
        }
        return Array(entries[lo..<hi])
    }

    public func snapshot() throws(RaftError) -> Snapshot { latestSnapshot }

    public func snapshotMetadata() -> SnapshotMetadata { latestSnapshot.metadata }

    /// Appends entries, first dropping any existing entries at or after the first new index
    /// (a conflicting suffix). Entries already compacted are skipped.
    public func append(_ newEntries: [LogEntry]) throws(RaftError) {
        guard var first = newEntries.first?.index else { return }
        var slice = newEntries[...]
        if first <= offset {
            // Part of the batch is already covered by the snapshot.
            let skip = first.distance(to: offset + 1)
            if skip >= slice.count { return }
            slice = slice.dropFirst(skip)
            first = offset + 1
        }
        if first > lastIndex() + 1 {
            throw RaftError(.storage, "append at \(first) would leave a gap after last index \(lastIndex())")
        }
        entries.removeSubrange((offset.distance(to: first))...)
        entries.append(contentsOf: slice)
    }

    /// Replaces the whole log with `snapshot` (a follower installing the leader's snapshot).
    public func applySnapshot(_ snapshot: Snapshot) throws(RaftError) {
        if snapshot.metadata.index < latestSnapshot.metadata.index {
            throw RaftError(.snapshotOutOfDate, "snapshot \(snapshot.metadata.index) is older than the held snapshot \(latestSnapshot.metadata.index)")
        }
        latestSnapshot = snapshot
        entries = [LogEntry(term: snapshot.metadata.term, index: snapshot.metadata.index, kind: .noop)]
        if hardState.commit < snapshot.metadata.index { hardState.commit = snapshot.metadata.index }
        if hardState.term < snapshot.metadata.term { hardState.term = snapshot.metadata.term }
    }

    /// Records a snapshot of the state machine taken at `index` (which must be held and applied)
    /// and returns it. The log itself is not compacted: call ``compact(upTo:)``.
    @discardableResult
    public func createSnapshot(at index: LogIndex, confState: ConfState? = nil, data: [UInt8]) throws(RaftError) -> Snapshot {
        if index <= latestSnapshot.metadata.index {
            throw RaftError(.snapshotOutOfDate, "snapshot at \(index) is not newer than the held snapshot \(latestSnapshot.metadata.index)")
        }
        if index > lastIndex() {
            throw RaftError(.unavailable, "snapshot at \(index) is past the last index \(lastIndex())")
        }
        let term = entries[offset.distance(to: index)].term
        latestSnapshot = Snapshot(
            metadata: SnapshotMetadata(index: index, term: term, confState: try membership(confState, at: index)),
            data: data)
        return latestSnapshot
    }

    /// Discards entries up to and including `index`. The snapshot must cover `index` first
    /// (entries not yet in a snapshot must not be discarded).
    public func compact(upTo index: LogIndex) throws(RaftError) {
        if index <= offset { return }
        if index > lastIndex() {
            throw RaftError(.unavailable, "compact to \(index) is past the last index \(lastIndex())")
        }
        if index > latestSnapshot.metadata.index {
            throw RaftError(.storage, "compact to \(index) would drop entries not covered by the snapshot at \(latestSnapshot.metadata.index)")
        }
        let i = offset.distance(to: index)
        var head = entries[i]
        head.data = []
        head.kind = .noop
        entries.removeSubrange(0...i)
        entries.insert(head, at: 0)
    }
}
