/// Entries and a snapshot the core holds in memory that the storage has not yet made durable.
///
/// Invariant: `entries[i].index == offset + i`; if `snapshot` is set, `offset == snapshot.index + 1`.
struct UnstableLog {
    /// A snapshot received from the leader, not yet persisted.
    var snapshot: InstallSnapshot?
    /// Entries not yet persisted, starting at `offset`.
    var entries: [LogEntry] = []
    /// Index of `entries[0]` (or of the next entry if there are none).
    var offset: LogIndex

    init(offset: LogIndex) { self.offset = offset }

    /// The first index, if the unstable part starts with a snapshot.
    var firstIndexFromSnapshot: LogIndex? { snapshot.map { $0.metadata.index + 1 } }

    /// The last index held here, if any.
    var lastIndex: LogIndex? {
        if let last = entries.last { return last.index }
        return snapshot?.metadata.index
    }

    /// The term of `index` if it is held here.
    func term(at index: LogIndex) -> Term? {
        if index < offset {
            if let s = snapshot, s.metadata.index == index { return s.metadata.term }
            return nil
        }
        let i = offset.distance(to: index)
        return i < entries.count ? entries[i].term : nil
    }

    /// Drops entries up to `index` once the storage reports them durable, but only if the entry
    /// there still has term `term` (it may have been replaced since the `Ready` was issued).
    mutating func stableTo(_ index: LogIndex, term: Term) {
        guard index >= offset, self.term(at: index) == term else { return }
        let n = offset.distance(to: index) + 1
        // `= []` rather than removeAll(keepingCapacity:): the Ready that carried these entries
        // usually still shares the buffer, and keeping capacity would copy it.
        if n == entries.count { entries = [] } else { entries.removeFirst(n) }
        offset = index + 1
    }

    /// Forgets the snapshot once the storage has installed it.
    mutating func stableSnapshot(at index: LogIndex) {
        if snapshot?.metadata.index == index { snapshot = nil }
    }

    /// Replaces everything with a snapshot received from the leader.
    mutating func restore(_ s: InstallSnapshot) {
        offset = s.metadata.index + 1
        entries.removeAll()
        snapshot = s
    }

    /// Appends `new`, replacing any held entries at or after `new[0].index`.
    /// Callers guarantee `new[0].index <= offset + entries.count` (no gap).
    mutating func truncateAndAppend(_ new: [LogEntry]) {
        guard let after = new.first?.index else { return }
        if after == offset + UInt64(entries.count) {
            if entries.isEmpty { entries = new } else { entries.append(contentsOf: new) }
        } else if after <= offset {
            // The new entries replace everything unstable (and part of the stable log: the
            // storage truncates its suffix when it persists them).
            offset = after
            entries = new
        } else {
            entries.removeSubrange(offset.distance(to: after)...)
            entries.append(contentsOf: new)
        }
    }

    /// Entries in `lo..<hi`; callers guarantee the range lies within `offset ... lastIndex + 1`.
    func slice(_ lo: LogIndex, _ hi: LogIndex) -> ArraySlice<LogEntry> {
        entries[offset.distance(to: lo)..<offset.distance(to: hi)]
    }
}
