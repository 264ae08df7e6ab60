/// What the user's machines did in one simulation: proof that the checks had something to
/// compare.
public struct SimMachineStats: Sendable, Hashable {
    /// Entries applied, on all nodes.
    public var entriesApplied = 0
    /// States compared with another node's at the same index (at the end of a batch of
    /// applies, or right after a snapshot recovery).
    public var statesCompared = 0
    /// Results compared with another node's for the same command.
    public var resultsCompared = 0
    /// Snapshots saved and recorded (by compaction).
    public var snapshotsSaved = 0
    /// Snapshots whose saved bytes (or, with ``SimMachineUnderTest/describeState``, a fresh
    /// instance recovered from them) were compared, as they were saved, with the state the
    /// node held at their index.
    public var snapshotsChecked = 0
    /// Of ``snapshotsChecked``, those saved after the node applied entries past their index:
    /// the saves that test snapshot isolation.
    public var snapshotsSavedBesideApply = 0
    /// Snapshots recovered: at restart from the node's own, or installed from the leader.
    public var snapshotsRecovered = 0

    /// No work yet.
    public init() {}

    mutating func add(_ other: SimMachineStats) {
        entriesApplied += other.entriesApplied
        statesCompared += other.statesCompared
        resultsCompared += other.resultsCompared
        snapshotsSaved += other.snapshotsSaved
        snapshotsChecked += other.snapshotsChecked
        snapshotsSavedBesideApply += other.snapshotsSavedBesideApply
        snapshotsRecovered += other.snapshotsRecovered
    }
}
