import Raft

/// Running a user's ``Raft/StateMachine`` on every node.
///
/// A cluster made with ``init(nodes:seed:faults:machine:snapshotSaveRounds:configure:disk:)``
/// runs, on every node, an instance of the user's machine beside the hash machine
/// (``SimStateMachine``), which stays: the ``SafetyChecker`` follows the logs through it, and
/// ``machine(_:)`` still returns it. Then:
/// - committed entries go to the user's instance too, in batches of 1 to 4 entries; its
///   results are compared with every other node's for the same command, and its state (a
///   digest: its snapshot's bytes, or ``SimMachineUnderTest/describeState``) at the end of each
///   batch with every other node's at the same index;
/// - the random schedule proposes the user's commands (``SimMachineUnderTest/commands``);
/// - a snapshot holds the hash machine's 16 bytes followed by the bytes the user's
///   ``Raft/StateMachine/saveSnapshot(_:to:)`` wrote. ``runRound()`` prepares it
///   (``Raft/StateMachine/sync()``, ``Raft/StateMachine/prepareSnapshot()``) and saves it
///   some rounds later, while the node goes on applying entries, as ``Raft/RaftNode`` saves
///   on its snapshot thread beside apply; a crash meanwhile loses it. As on a node, an
///   instance has one context at a time: while it is alive the node's state is not taken
///   through another snapshot (without `describeState`), and it is saved before the node
///   recovers a snapshot or takes another. Each saved snapshot is compared with the state the
///   node held at its index. ``compact(_:)``, called directly, saves at once;
/// - a follower that is sent a snapshot recovers its live instance from it
///   (``Raft/StateMachine/recoverSnapshot(from:metadata:)``); a node that restarts gets a new
///   instance recovered from its latest snapshot, then fed the log after it. Every snapshot's
///   metadata, and the metadata a state is digested with, carries the membership in force
///   at its index.
extension SimCluster {
    /// Creates a cluster of `nodes` voters running `machine` on every node; see the extension's
    /// overview.
    ///
    /// - Parameter snapshotSaveRounds: how many rounds of the random schedule pass between
    ///   preparing a snapshot and saving it (chosen per snapshot); `0...0` saves at once.
    public convenience init<SM: StateMachine>(
        nodes: Int, seed: UInt64, faults: SimFaults = .none, machine: SimMachineUnderTest<SM>, snapshotSaveRounds: ClosedRange<Int> = 1...3,
        configure: (inout RaftConfiguration) -> Void = { _ in }, disk: @escaping ([NodeID]) -> any SimDisk = { MemoryDisk(voters: $0) }
    ) throws(RaftError) {
        try self.init(nodes: nodes, seed: seed, faults: faults, configure: configure, disk: disk)
        // `unowned`: the cluster owns the host.
        userMachines = SimMachineHost(
            machine, ids: ids, seed: seed, checker: checker, saveRounds: snapshotSaveRounds,
            membership: { [unowned self] i, index in cores[i]?.membership(at: index) })
        for i in ids.indices { try startUserMachine(i, from: storages[i].snapshot()) }
    }

    /// The user's state machine instance of `id`, if the cluster runs one of type `SM` and the
    /// node is up.
    public func stateMachine<SM: StateMachine>(_ id: NodeID, as type: SM.Type = SM.self) -> SM? {
        userMachines?.instance(slot(id)) as? SM
    }

    /// The rules the user's state machine broke so far (each is also a checker violation).
    public var stateMachineFindings: [SimStateMachineFinding] { userMachines?.findings ?? [] }

    /// What the user's state machine did so far; zero without one.
    public var stateMachineStats: SimMachineStats { userMachines?.stats ?? SimMachineStats() }

    // MARK: Hooks of the node paths

    /// The hash machine held in snapshot data: all of it, or its first 16 bytes when the
    /// user's bytes follow.
    func hashMachine(fromSnapshot data: [UInt8]) -> SimStateMachine? {
        guard userMachines != nil else { return SimStateMachine(snapshotData: data) }
        guard data.count >= Self.hashSnapshotBytes else { return nil }
        return SimStateMachine(snapshotData: Array(data.prefix(Self.hashSnapshotBytes)))
    }

    static var hashSnapshotBytes: Int { 16 }

    /// Gives node `i` a new instance of the user's machine, recovered from its latest snapshot.
    func startUserMachine(_ i: Int, from snapshot: Snapshot) {
        guard let host = userMachines else { return }
        let user = snapshot.isEmpty ? nil : snapshot.data.dropFirst(Self.hashSnapshotBytes)
        host.start(i, snapshot: user, metadata: snapshot.metadata, source: "its own snapshot at restart")
    }

    /// The user's machine recovers the snapshot node `i` installed from its leader.
    func installInUserMachine(_ i: Int, _ data: [UInt8], _ metadata: SnapshotMetadata) {
        userMachines?.install(i, data.dropFirst(Self.hashSnapshotBytes), metadata: metadata)
    }

    /// The snapshot data of node `i` at the hash machine's applied index: the hash machine's,
    /// followed by the user's machine's when there is one (prepared and saved at once). `nil`
    /// if saving failed (a finding was recorded).
    func snapshotData(_ i: Int, _ sm: SimStateMachine) -> [UInt8]? {
        guard let host = userMachines else { return sm.snapshotData }
        guard let metadata = snapshotMetadata(i, at: sm.applied), host.prepareSnapshot(i, metadata, hashData: sm.snapshotData, due: round) else {
            return nil
        }
        return host.saveSnapshot(i)?.data
    }

    func snapshotMetadata(_ i: Int, at index: LogIndex) -> SnapshotMetadata? {
        guard let core = cores[i], let term = try? core.term(at: index), let conf = core.membership(at: index) else { return nil }
        return SnapshotMetadata(index: index, term: term, confState: conf)
    }

    /// A command for the random schedule: the user's, or a numbered one for the hash machine.
    func nextCommand() -> [UInt8] { userMachines?.nextCommand() ?? Array("c\(proposed)".utf8) }

    // MARK: Snapshots saved beside apply

    /// A snapshot chance of the random schedule: with a user's machine, prepares a snapshot to
    /// be saved some rounds later (``finishSnapshots()``); otherwise ``compact(_:)``.
    func beginCompaction(_ id: NodeID) {
        guard let host = userMachines else {
            compact(id)
            return
        }
        let i = slot(id)
        guard !host.pendingSnapshots.contains(where: { $0.slot == i }), let c = cores[i] else { return }
        let sm = machines[i]
        guard sm.applied > storages[i].snapshotMetadata().index, sm.applied == c.appliedIndex, let metadata = snapshotMetadata(i, at: sm.applied),
            host.prepareSnapshot(i, metadata, hashData: sm.snapshotData, due: round + host.saveDelay())
        else { return }
        note("snapshot \(id) prepared at \(sm.applied)")
        finishSnapshots()
    }

    /// Saves the prepared snapshots that are due, records them and compacts the logs behind
    /// them.
    func finishSnapshots() {
        guard let host = userMachines else { return }
        for pending in host.pendingSnapshots where pending.due <= round { finishSnapshot(pending.slot) }
    }

    /// Saves node `i`'s prepared snapshot, if any, and records it, unless it was overtaken
    /// meanwhile (the node installed a newer one), as ``Raft/RaftNode`` drops it.
    func finishSnapshot(_ i: Int) {
        guard let saved = userMachines?.saveSnapshot(i), cores[i] != nil, storages[i].snapshotMetadata().index < saved.index else { return }
        recordSnapshot(i, at: saved.index, data: saved.data)
    }

    // MARK: Liveness

    /// The liveness phase's marker command: the user's, or one no other command equals.
    func livenessMarker() -> [UInt8] { userMachines?.nextCommand() ?? Array("liveness-\(round)".utf8) }

    /// Whether the liveness marker reached the state machines: its entry (`receipt`) is applied
    /// on every member of the leader's membership (removed and spare nodes are not sent the log)
    /// with the term it was proposed in. The user's commands need not be distinct, so the marker
    /// is followed by its index; the hash machine's by its bytes.
    func livenessMarkerApplied(_ marker: [UInt8], _ receipt: ProposalReceipt?) -> Bool {
        guard userMachines != nil else { return machines.contains { $0.lastCommand == marker } }
        guard let receipt, let l = leader, let members = core(l)?.membership.members else { return false }
        return members.allSatisfy { id in
            guard let c = core(id), machine(id).applied >= receipt.lastIndex else { return false }
            return (try? c.term(at: receipt.lastIndex)) == receipt.term
        }
    }
}
