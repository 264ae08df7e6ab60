import Raft

/// A storage that passes every requirement of ``WritableLogStorage`` to the storage it wraps,
/// for tests to subclass and override the calls they inject faults into or observe. The
/// streaming snapshot requirements are not forwarded: a subclass gets the protocol's in-memory
/// defaults, as a user's custom storage would.
class ForwardingStorage: WritableLogStorage {
    let base: any WritableLogStorage

    init(_ base: any WritableLogStorage) { self.base = base }

    func initialState() throws(RaftError) -> (HardState, ConfState) { try base.initialState() }
    func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] {
        try base.entries(in: range, maxBytes: maxBytes)
    }
    func term(at index: LogIndex) throws(RaftError) -> Term { try base.term(at: index) }
    func membershipEntries() throws(RaftError) -> [LogEntry] { try base.membershipEntries() }
    func firstIndex() -> LogIndex { base.firstIndex() }
    func lastIndex() -> LogIndex { base.lastIndex() }
    func snapshot() throws(RaftError) -> Snapshot { try base.snapshot() }
    func snapshotMetadata() -> SnapshotMetadata { base.snapshotMetadata() }
    var currentHardState: HardState { base.currentHardState }
    func append(_ entries: [LogEntry]) throws(RaftError) { try base.append(entries) }
    func setHardState(_ state: HardState) throws(RaftError) { try base.setHardState(state) }
    func applySnapshot(_ snapshot: Snapshot) throws(RaftError) { try base.applySnapshot(snapshot) }
    @discardableResult
    func createSnapshot(at index: LogIndex, confState: ConfState?, data: [UInt8]) throws(RaftError) -> Snapshot {
        try base.createSnapshot(at: index, confState: confState, data: data)
    }
    func compact(upTo index: LogIndex) throws(RaftError) { try base.compact(upTo: index) }
    func sync() throws(RaftError) { try base.sync() }
    func close() { base.close() }
    /// `false`, as the protocol's default: a subclass overrides it to have the node persist
    /// on its I/O thread.
    var performsBlockingIO: Bool { false }
}
