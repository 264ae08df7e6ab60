/// The read side of durable storage, as the core sees it.
///
/// The core reads entries, terms and the latest snapshot through this protocol; the shell (or
/// the test kit) writes to it when it persists a ``Ready``. The core reads only between
/// batches, after the shell persisted the last one: ``WritableLogStorage/persist(_:)`` syncs
/// every batch that carries entries, a snapshot, or a new term or vote, so what the core sees
/// is durable. Implementations are used from one thread or task at a time.
///
/// Invariant: `firstIndex() - 1 <= snapshot().metadata.index <= lastIndex()` (a log may keep a
/// trail of entries behind its latest snapshot), and every entry in `firstIndex()...lastIndex()`
/// is available, as is the term of `firstIndex() - 1`.
public protocol LogStorage: AnyObject {
    /// The durable hard state and membership, read once when a core starts.
    func initialState() throws(RaftError) -> (HardState, ConfState)
    /// Entries in `range` (half-open), stopping early once `maxBytes` of ``LogEntry/byteSize``
    /// would be exceeded, but always returning at least one entry if the range is not empty.
    /// Throws ``RaftError/Code/compacted`` below `firstIndex()` and
    /// ``RaftError/Code/unavailable`` past `lastIndex()`.
    func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry]
    /// The term of the entry at `index`; `index` may be `firstIndex() - 1` (the snapshot's term).
    func term(at index: LogIndex) throws(RaftError) -> Term
    /// The index of the first entry still held (at most the snapshot index plus one).
    func firstIndex() -> LogIndex
    /// The index of the last entry written (the snapshot index if there are none).
    ///
    /// An entry appended to a ``WritableLogStorage`` counts at once; it is durable once the
    /// storage's ``WritableLogStorage/sync()`` returns. The core reads this between persisted
    /// batches, when the two are the same. A storage that buffers writes may say up to where
    /// they are durable (``FileLogStorage/durableLastIndex``).
    func lastIndex() -> LogIndex
    /// The membership entries (``LogEntry/Kind/membership``) held above the latest snapshot's
    /// index, in index order: a core reads them once when it starts, because the membership in
    /// force is the latest in the log (thesis §4.1), and ``initialState()``'s is the snapshot's.
    /// The default reads every entry above the snapshot; a storage that can find them faster
    /// (an index of them) should.
    func membershipEntries() throws(RaftError) -> [LogEntry]
    /// The latest snapshot with its data in memory, for shells that send snapshots whole
    /// (``SnapshotSending/inMessage``). A ``RaftNode`` never calls it: it streams the data with
    /// ``openSnapshot(verification:)``.
    func snapshot() throws(RaftError) -> Snapshot
    /// The latest snapshot's metadata, without its data (cheap: no file is read).
    func snapshotMetadata() -> SnapshotMetadata
    /// The latest snapshot's data as a stream, verified before the first byte is handed out,
    /// for restoring a state machine at startup. The default reads ``snapshot()`` into memory.
    func openSnapshot() throws(RaftError) -> SnapshotInput
    /// The latest snapshot's data as a stream, checked as `verification` says.
    ///
    /// A ``RaftNode`` opens the stream on its run loop and reads it on another thread (to send
    /// the snapshot to a follower in chunks, or to restore its state machine from a snapshot it
    /// just installed), so opening must be cheap: it may read a header, never the data; and the
    /// stream must not depend on the storage's state after it is open. The default is
    /// ``openSnapshot()``, whatever `verification` asks.
    func openSnapshot(verification: SnapshotVerification) throws(RaftError) -> SnapshotInput
}

extension LogStorage {
    /// The membership in force at `index` (at or above the latest snapshot): the latest
    /// membership entry at or below it, or the snapshot's membership. What a snapshot taken at
    /// `index` records when it is given no membership.
    ///
    /// - Throws: a storage read error, or ``RaftError/Code/corruption`` for a membership entry
    ///   that does not decode.
    public func membership(at index: LogIndex) throws(RaftError) -> ConfState {
        guard let entry = try membershipEntries().last(where: { $0.index <= index }) else { return snapshotMetadata().confState }
        do { return try ConfState(decoding: entry.data[...]) } catch {
            throw RaftError(.corruption, "membership entry \(entry.index): \(error.message)")
        }
    }

    /// `given`, or the membership in force at `index` when `nil`.
    func membership(_ given: ConfState?, at index: LogIndex) throws(RaftError) -> ConfState {
        if let given { return given }
        return try membership(at: index)
    }

    public func membershipEntries() throws(RaftError) -> [LogEntry] {
        var found: [LogEntry] = []
        var next = max(firstIndex(), snapshotMetadata().index + 1)
        let end = lastIndex() + 1
        while next < end {
            let page = try entries(in: next..<end, maxBytes: 4 << 20)
            guard let last = page.last, last.index >= next else {
                throw RaftError(.storage, "storage returned no entries for \(next)...\(end - 1) while looking for membership entries")
            }
            for e in page where e.kind == .membership { found.append(e) }
            next = last.index + 1
        }
        return found
    }

    public func openSnapshot() throws(RaftError) -> SnapshotInput { SnapshotInput(try snapshot().data) }
    public func openSnapshot(verification: SnapshotVerification) throws(RaftError) -> SnapshotInput { try openSnapshot() }
}

/// When a snapshot stream checks the bytes it hands out against the checksum stored with them
/// (``LogStorage/openSnapshot(verification:)``). Each suits one use, so that no checksum is
/// computed twice over the same bytes.
public enum SnapshotVerification: Sendable, Hashable {
    /// A whole pass over the stored snapshot before the first byte: for restoring a state
    /// machine from data at rest (at startup), which must never see a damaged byte.
    case beforeReading
    /// In the same pass as the reads: the read that reaches the end throws
    /// ``RaftError/Code/corruption`` if the checksum does not match. For sending, where the
    /// chunk that ends the snapshot leaves only after that read.
    case whileReading
    /// Not at all: the snapshot was just written by this storage from bytes verified on their
    /// way in (one a follower received and installed; see
    /// ``WritableLogStorage/beginReceivedSnapshot(_:)``). Its checksum guards it at rest, from
    /// the next start on.
    case skip
}

/// Storage the shell writes to when it carries out a ``Ready``: the write side of
/// ``LogStorage``. ``MemoryLogStorage`` and ``FileLogStorage`` implement it.
public protocol WritableLogStorage: LogStorage {
    /// The hard state most recently written.
    var currentHardState: HardState { get }
    /// Appends entries, replacing any held entries from the first new index on.
    func append(_ entries: [LogEntry]) throws(RaftError)
    /// Records the hard state.
    func setHardState(_ state: HardState) throws(RaftError)
    /// Replaces the log with a snapshot received from the leader, held in memory.
    func applySnapshot(_ snapshot: Snapshot) throws(RaftError)
    /// Starts a snapshot received from the leader: a ``RaftNode`` writes the chunks into the
    /// returned output as they arrive, from another thread, and verifies them against the
    /// leader's checksum as it goes; nothing is visible until ``WritableLogStorage/applySnapshot(_:)-(SnapshotOutput)``.
    /// Like ``beginSnapshot(at:confState:)`` it is called on the node's loop, so it must be
    /// cheap. The default collects the data in memory for ``WritableLogStorage/applySnapshot(_:)-(Snapshot)``.
    func beginReceivedSnapshot(_ metadata: SnapshotMetadata) throws(RaftError) -> SnapshotOutput
    /// Replaces the log with a snapshot received into an output from
    /// ``beginReceivedSnapshot(_:)`` and fully written: the snapshot is durable and the latest
    /// once this returns (a file is renamed into place, not copied). Throws
    /// ``RaftError/Code/snapshotOutOfDate`` (and abandons the output) if it is not newer than
    /// the latest snapshot. The default hands the data to ``applySnapshot(_:)-(Snapshot)``.
    func applySnapshot(_ received: SnapshotOutput) throws(RaftError)
    /// Records a snapshot of the state machine at `index`, with `confState` as its membership:
    /// pass the membership in force at `index` (``RaftCore/membership(at:)``); `nil` takes it
    /// from the log (``LogStorage/membership(at:)``).
    @discardableResult
    func createSnapshot(at index: LogIndex, confState: ConfState?, data: [UInt8]) throws(RaftError) -> Snapshot
    /// Starts a snapshot of the state machine at `index` (held durably and applied). The
    /// returned output may be written from another thread; nothing is visible until
    /// ``finishSnapshot(_:)``. The default collects the data in memory for
    /// ``createSnapshot(at:confState:data:)``.
    func beginSnapshot(at index: LogIndex, confState: ConfState?) throws(RaftError) -> SnapshotOutput
    /// Makes a snapshot begun with ``beginSnapshot(at:confState:)`` and fully written the
    /// storage's latest, durably. Does not compact the log.
    @discardableResult
    func finishSnapshot(_ output: SnapshotOutput) throws(RaftError) -> SnapshotMetadata
    /// Discards entries up to `index`, which a snapshot covers.
    func compact(upTo index: LogIndex) throws(RaftError)
    /// Makes every write so far durable.
    func sync() throws(RaftError)
    /// Whether writes block on the disk, so a runtime should call them off Swift's cooperative
    /// thread pool. `false` by default.
    var performsBlockingIO: Bool { get }
    /// Releases files; the storage is unusable afterwards. Does nothing by default.
    func close()
    /// What opening the storage found and repaired (a torn tail cut off, damaged snapshots
    /// skipped, unknown or temporary files), which ``RaftNode`` logs when it starts and reports
    /// in ``NodeStatus/storageRecovery``. ``FileLogStorage`` returns its
    /// ``FileLogStorage/recovery``; `nil` (the default) means the storage has nothing to report.
    var recoveryReport: StorageRecoveryReport? { get }
}

extension WritableLogStorage {
    public var performsBlockingIO: Bool { false }
    public func close() {}
    public var recoveryReport: StorageRecoveryReport? { nil }

    public func beginSnapshot(at index: LogIndex, confState: ConfState?) throws(RaftError) -> SnapshotOutput {
        if index > lastIndex() { throw RaftError(.unavailable, "snapshot at \(index) is past the last index \(lastIndex())") }
        let meta = SnapshotMetadata(index: index, term: try term(at: index), confState: try membership(confState, at: index))
        return SnapshotOutput(inMemory: meta)
    }

    @discardableResult
    public func finishSnapshot(_ output: SnapshotOutput) throws(RaftError) -> SnapshotMetadata {
        try output.seal()
        return try createSnapshot(at: output.metadata.index, confState: output.metadata.confState, data: output.data).metadata
    }

    public func beginReceivedSnapshot(_ metadata: SnapshotMetadata) throws(RaftError) -> SnapshotOutput {
        SnapshotOutput(inMemory: metadata)
    }

    public func applySnapshot(_ received: SnapshotOutput) throws(RaftError) {
        try received.seal()
        try applySnapshot(Snapshot(metadata: received.metadata, data: received.data))
    }
}

extension WritableLogStorage {
    /// Persists what a ``Ready`` asks for, in the contract's order (snapshot, entries, hard
    /// state), and syncs once if ``Ready/mustSync`` says so. A commit-only hard state is
    /// buffered and made durable by the next sync. A snapshot must be held in memory
    /// (``SnapshotData/bytes(_:)``); a ``RaftNode`` installs the ones it received itself.
    public func persist(_ rd: Ready) throws(RaftError) {
        if let s = rd.snapshot { try applySnapshot(s.inMemorySnapshot()) }
        if !rd.entries.isEmpty { try append(rd.entries) }
        if let hs = rd.hardState { try setHardState(hs) }
        if rd.mustSync { try sync() }
    }
}
