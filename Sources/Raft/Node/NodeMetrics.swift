import Metrics

/// The metrics a node exports through swift-metrics, all dimensioned by node id.
struct NodeMetrics {
    let term: Gauge
    let commit: Gauge
    let applied: Gauge
    let leaderChanges: Counter
    let proposalLatency: Timer
    let syncLatency: Timer
    let snapshotsTaken: Counter
    let snapshotsInstalled: Counter
    let snapshotsSent: Counter
    let droppedMessages: Counter
    /// Heartbeat rounds this node sent as leader to confirm reads (and, with lease reads on,
    /// every heartbeat, which renews the lease).
    let readRounds: Counter
    /// Read indexes confirmed for this node's own linearizable and lease reads.
    let readsConfirmed: Counter
    /// Events the loop took while a batch was being persisted (reads, and the messages of read
    /// rounds), instead of leaving them for its next turn.
    let stepsDuringPersist: Counter

    init(id: NodeID, factory: any MetricsFactory) {
        let d = [("node", id.description)]
        term = Gauge(label: "raft_term", dimensions: d, factory: factory)
        commit = Gauge(label: "raft_commit_index", dimensions: d, factory: factory)
        applied = Gauge(label: "raft_applied_index", dimensions: d, factory: factory)
        leaderChanges = Counter(label: "raft_leader_changes_total", dimensions: d, factory: factory)
        proposalLatency = Timer(label: "raft_proposal_latency", dimensions: d, factory: factory)
        syncLatency = Timer(label: "raft_fsync_latency", dimensions: d, factory: factory)
        snapshotsTaken = Counter(label: "raft_snapshots_taken_total", dimensions: d, factory: factory)
        snapshotsInstalled = Counter(label: "raft_snapshots_installed_total", dimensions: d, factory: factory)
        snapshotsSent = Counter(label: "raft_snapshots_sent_total", dimensions: d, factory: factory)
        droppedMessages = Counter(label: "raft_dropped_messages_total", dimensions: d, factory: factory)
        readRounds = Counter(label: "raft_read_rounds_total", dimensions: d, factory: factory)
        readsConfirmed = Counter(label: "raft_reads_confirmed_total", dimensions: d, factory: factory)
        stepsDuringPersist = Counter(label: "raft_steps_during_persist_total", dimensions: d, factory: factory)
    }
}
