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

    init(id: NodeID) {
        let d = [("node", id.description)]
        term = Gauge(label: "raft_term", dimensions: d)
        commit = Gauge(label: "raft_commit_index", dimensions: d)
        applied = Gauge(label: "raft_applied_index", dimensions: d)
        leaderChanges = Counter(label: "raft_leader_changes_total", dimensions: d)
        proposalLatency = Timer(label: "raft_proposal_latency", dimensions: d)
        syncLatency = Timer(label: "raft_fsync_latency", dimensions: d)
        snapshotsTaken = Counter(label: "raft_snapshots_taken_total", dimensions: d)
        snapshotsInstalled = Counter(label: "raft_snapshots_installed_total", dimensions: d)
        snapshotsSent = Counter(label: "raft_snapshots_sent_total", dimensions: d)
        droppedMessages = Counter(label: "raft_dropped_messages_total", dimensions: d)
    }
}
