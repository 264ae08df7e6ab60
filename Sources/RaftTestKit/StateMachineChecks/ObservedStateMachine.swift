import Raft
import Synchronization

/// The user's state machine as the runtime check runs it: every call is passed through
/// unchanged, and what was applied or restored is recorded for the check to compare.
final class ObservedStateMachine<Inner: StateMachine>: StateMachine {
    typealias Result = Inner.Result
    typealias SnapshotContext = Inner.SnapshotContext

    let inner: Inner
    let node: NodeID
    let record: RuntimeRecord<Inner.Result>

    init(_ inner: Inner, node: NodeID, record: RuntimeRecord<Inner.Result>) {
        self.inner = inner
        self.node = node
        self.record = record
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [Inner.Result] {
        let results = try inner.apply(entries)
        record.applied(entries, results: results, on: node)
        return results
    }

    func prepareSnapshot() throws -> Inner.SnapshotContext { try inner.prepareSnapshot() }

    static func saveSnapshot(_ context: Inner.SnapshotContext, to output: SnapshotOutput) throws {
        try Inner.saveSnapshot(context, to: output)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        try inner.recoverSnapshot(from: input, metadata: metadata)
        record.restored(metadata.index, on: node)
    }

    func openDurableState() throws -> LogIndex? { try inner.openDurableState() }
    /// Skipped while the check crashes this node: the state machine loses what it did not
    /// make durable, as when its process dies.
    func sync() throws {
        if record.crashing(node) { return }
        try inner.sync()
    }
    var reportedAppliedIndex: LogIndex? { inner.reportedAppliedIndex }
}

/// What the nodes of the runtime check applied: the committed log as it reached the state
/// machines (the same entry at an index everywhere, or the record names the disagreement), each
/// node's results, and its snapshot restores.
final class RuntimeRecord<Result: Sendable>: Sendable {
    struct State {
        /// The entry applied at each index, by whichever node applied it first.
        var log: [LogIndex: LogEntry] = [:]
        /// Results by index, by node (the latest run's when an entry is fed again).
        var results: [NodeID: [LogIndex: Result]] = [:]
        /// Snapshot restores per node.
        var restores: [NodeID: [LogIndex]] = [:]
        /// Entries applied per node, over every run.
        var applies: [NodeID: Int] = [:]
        /// The first time two nodes applied different entries at one index.
        var disagreement: String?
        /// Nodes being crashed: their state machine is not synced.
        var crashing: Set<NodeID> = []
    }

    let state = Mutex(State())

    func applied(_ entries: ArraySlice<LogEntry>, results: [Result], on node: NodeID) {
        state.withLock { s in
            var next = results.makeIterator()
            for e in entries {
                if let known = s.log[e.index], known != e, s.disagreement == nil {
                    s.disagreement = "node \(node) applied \(Describe.entry(e)) at index \(e.index), another node \(Describe.entry(known))"
                }
                s.log[e.index] = s.log[e.index] ?? e
                s.applies[node, default: 0] += 1
                if e.kind == .command, let r = next.next() { s.results[node, default: [:]][e.index] = r }
            }
        }
    }

    func crashing(_ node: NodeID) -> Bool { state.withLock { $0.crashing.contains(node) } }
    func setCrashing(_ node: NodeID, _ on: Bool) {
        state.withLock { s in
            if on { s.crashing.insert(node) } else { s.crashing.remove(node) }
        }
    }

    func restored(_ index: LogIndex, on node: NodeID) { state.withLock { $0.restores[node, default: []].append(index) } }

    func restores(of node: NodeID) -> [LogIndex] { state.withLock { $0.restores[node] ?? [] } }
}
