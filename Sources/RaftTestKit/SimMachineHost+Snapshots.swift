import Raft

/// Snapshots of the user's machine, in the order a ``Raft/RaftNode`` takes them: sync and
/// prepare a context between two applies, save it some rounds later while apply goes on, then
/// release it. A node holds one context at a time; it is saved before the node recovers a
/// snapshot (RaftNode runs the restore after the save on its snapshot thread) and dropped with
/// the instance on a crash. Each saved snapshot is compared, as it is saved, with the state the
/// node held at its index: a snapshot that leaks later state is found whether or not any node
/// ever recovers it.
extension SimMachineHost {
    /// A snapshot context prepared and not saved yet.
    struct Pending {
        var metadata: SnapshotMetadata
        /// The hash machine's snapshot at the index, stored in front of the user's bytes.
        var hashData: [UInt8]
        /// The round at which it is saved.
        var due: Int
        /// The context; `nil` once saved, which releases it.
        var context: SM.SnapshotContext?
        /// The node's state at the index, taken just before the context was prepared.
        var prepared: Digest
    }

    var pendingSnapshots: [(slot: Int, index: LogIndex, due: Int)] {
        pending.map { (slot: $0.key, index: $0.value.metadata.index, due: $0.value.due) }.sorted { $0.slot < $1.slot }
    }

    func prepareSnapshot(_ n: Int, _ metadata: SnapshotMetadata, hashData: [UInt8], due: Int) -> Bool {
        guard let replica = replicas[n], pending[n] == nil else { return false }
        // The state to compare the saved snapshot with, taken (and its own context, if any,
        // released) before the context that is saved later.
        guard let prepared = digest(of: replica, n, metadata) else { return false }
        let context: SM.SnapshotContext
        do {
            try replica.machine.sync()
            context = try replica.machine.prepareSnapshot()
        } catch {
            snapshotFailed(n, metadata.index, "preparing a snapshot at index \(metadata.index) (sync, then prepareSnapshot) threw: \(error)")
            return false
        }
        pending[n] = Pending(metadata: metadata, hashData: hashData, due: due, context: context, prepared: prepared)
        return true
    }

    func saveSnapshot(_ n: Int) -> (index: LogIndex, data: [UInt8])? {
        guard var p = pending.removeValue(forKey: n) else { return nil }
        let index = p.metadata.index
        let bytes: [UInt8]
        do { bytes = try Self.save(&p) } catch {
            snapshotFailed(n, index, "saveSnapshot threw on the context prepared at index \(index): \(error)")
            return nil
        }
        guard let replica = replicas[n] else { return nil }
        stats.snapshotsChecked += 1
        if replica.applied > index { stats.snapshotsSavedBesideApply += 1 }
        guard verify(n, replica, p, bytes) else { return nil }
        // The node's state was not taken while the context was alive (without describeState):
        // compare it now.
        if machine.describeState == nil, replica.applied > index {
            let at = metadata(n, at: replica.applied, term: replica.appliedTerm)
            if let live = digest(of: replica, n, at) { compare(n, at, live, recovered: nil) }
        }
        return (index, p.hashData + bytes)
    }

    /// Saves `p`'s context into memory and releases it (the only reference is in `p`).
    static func save(_ p: inout Pending) throws -> [UInt8] {
        defer { p.context = nil }
        guard let context = p.context else { throw RaftError(.invalidArgument, "the snapshot at index \(p.metadata.index) was saved already") }
        let output = SnapshotOutput(inMemory: p.metadata)
        try SM.saveSnapshot(context, to: output)
        return output.data
    }

    /// Compares a saved snapshot with the state node `n` held when it prepared it: its bytes,
    /// or with ``SimMachineUnderTest/describeState``, the state of a fresh instance recovered
    /// from it. Returns whether they match; otherwise a finding was reported.
    func verify(_ n: Int, _ replica: Replica, _ p: Pending, _ bytes: [UInt8]) -> Bool {
        let index = p.metadata.index
        let saved: Digest
        if machine.describeState == nil {
            saved = digest(ofSnapshot: bytes, node: ids[n], viaSnapshot: false)
        } else {
            guard let copy = fresh(n) else { return false }
            do {
                try copy.recoverSnapshot(from: SnapshotInput(bytes), metadata: p.metadata)
                saved = try digest(of: copy, node: ids[n], p.metadata, viaSnapshot: true)
            } catch {
                broke(
                    n, .snapshotRecover, at: index,
                    "recovering the snapshot saved at index \(index) (\(bytes.count) bytes) into a fresh instance, then describing its state, threw: \(error)",
                    fix: "recoverSnapshot must read back everything saveSnapshot wrote, and describeState must succeed on any state")
                return false
            }
        }
        guard saved.hash != p.prepared.hash else { return true }
        snapshotDiffers(n, replica, p, saved)
        return false
    }

    /// The saved snapshot (`saved`) is not the state node `n` held at its index: names the
    /// likely cause.
    func snapshotDiffers(_ n: Int, _ replica: Replica, _ p: Pending, _ saved: Digest) {
        let index = p.metadata.index
        let applied = replica.applied
        var why = ""
        let cause: Cause
        if applied > index, let live = digest(of: replica, n, metadata(n, at: applied, term: replica.appliedTerm)), live.hash == saved.hash {
            cause = .snapshotHoldsLaterState
            why = "; that is the state the node held when it saved the snapshot, at index \(applied), after the snapshot's index"
        } else if let later = laterIndex(holding: saved.hash, after: index) {
            cause = .snapshotHoldsLaterState
            why = "; that is the state at index \(later), after the snapshot's index"
        } else if let same = sameStateInOtherBytes(p.prepared, saved, p.metadata) {
            cause = .snapshotBytesNotDeterministic
            why = same
        } else if machine.describeState != nil, let empty = emptyDigest(n, p.metadata), empty.hash == saved.hash {
            cause = .recoverIgnoresSnapshot
            why = "; that is the state of a new instance: the recovery kept the fresh instance's empty state"
        } else {
            cause = .snapshotLosesState
        }
        let snapshot = "the snapshot prepared at index \(index), saved after the node applied entries up to index \(applied),"
        let what =
            machine.describeState == nil
            ? "\(snapshot) is not the state at index \(index): saved, it is"
            : "a fresh instance recovered from \(snapshot) does not hold the state at index \(index): it holds"
        report(
            .init(
                .snapshotIsolation, cause: cause, node: ids[n], at: index,
                "\(what) \(saved.preview); at index \(index) the node held \(p.prepared.preview)\(why)", fix: Self.fix(for: cause)))
    }

    /// The state of a new instance from the factory; `nil` if it cannot be made or described.
    func emptyDigest(_ n: Int, _ metadata: SnapshotMetadata) -> Digest? {
        guard let empty = spareInstance() else { return nil }
        return try? digest(of: empty, node: ids[n], metadata, viaSnapshot: false)
    }

    func snapshotFailed(_ n: Int, _ index: LogIndex, _ problem: String) {
        broke(n, .snapshotSave, at: index, problem, fix: "sync, prepareSnapshot and saveSnapshot (and describeState) must succeed on any state apply produced")
    }
}
