import Logging

// Snapshots: taking them beside apply, installing the leader's and restoring the state machine
// from it off the loop, and the crash points tests inject around them. Streaming them in
// chunks is in NodeLoop+SnapshotTransfer.
extension NodeLoop {
    /// Installs the snapshot a ``Ready`` carries in the storage, before its entries: a file
    /// the node received is renamed into place (never read or copied), then the log is reset.
    func installSnapshot(_ s: InstallSnapshot) throws(RaftError) {
        switch s.data {
        case .received(let id):
            guard let output = snapshotIO.received.removeValue(forKey: id) else {
                throw RaftError(.storage, "node \(node.id): snapshot \(s.metadata.index) to install (received as \(id)) is not held here")
            }
            // A crash here leaves the received file behind, as a real one would.
            try crashPoint(.snapshotReceived)
            try storage.applySnapshot(output.value)
        case .bytes(let data):
            try crashPoint(.snapshotReceived)
            try storage.applySnapshot(Snapshot(metadata: s.metadata, data: data))
        case .inSenderStorage:
            // The core refuses these in messages, so none reaches a follower's Ready.
            throw RaftError(.invalidMessage, "node \(node.id): snapshot \(s.metadata.index) arrived without its data")
        }
    }

    /// Restores the state machine from the snapshot just installed, if it moves it forward,
    /// on the snapshot thread: the loop goes on handling messages and ticks, persisting and
    /// acknowledging entries, and holds committed entries until the restore is done
    /// (``snapshotRestored(_:failure:)``). Only the stream is opened here, reading no data.
    func restoreSnapshot(_ snap: InstallSnapshot) throws(RaftError) {
        let meta = snap.metadata
        // A snapshot the core accepts is past its commit index, so past any still restoring.
        let decision = snapshotIO.restoring.isEmpty ? applied.decide(snapshotAt: meta.index) : .load
        switch decision {
        case .load:
            // Written by this node moments ago from bytes verified as they arrived.
            let input = try storage.openSnapshot(verification: .skip)
            snapshotIO.restoring.append(meta)
            let job = Confined(value: (stateMachine, input))
            let inbox = node.inbox
            let id = node.id
            // After any snapshot being saved: the two never overlap.
            snapshotQueue.async {
                let (machine, input) = job.value
                var failure: RaftError?
                do { try machine.recoverSnapshot(from: input, metadata: meta) } catch {
                    failure = RaftError.stateMachine("node \(id): restoring snapshot \(meta.index)", error)
                }
                input.close()
                inbox.post(.snapshotWork(.restored(meta, failure)))
            }
            logger.info("restoring snapshot", metadata: ["raft.snapshot": "\(meta.index)"])
        case .adoptMetadataOnly:
            applied.snapshotInstalled(meta)
        case .ignore:
            break
        }
        lastSnapshot = max(lastSnapshot, meta.index)
        // Proposals at or below the snapshot will never be applied here.
        for (index, p) in pending where index <= meta.index {
            pending[index] = nil
            p.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(index) was superseded by a snapshot; its outcome is unknown"))
        }
    }

    /// Records a snapshot the state machine restored on the snapshot thread; once none is left
    /// restoring, applies the committed entries held meanwhile, from the log.
    func snapshotRestored(_ meta: SnapshotMetadata, failure: RaftError?) throws(RaftError) {
        guard snapshotIO.restoring.first == meta else { return }
        snapshotIO.restoring.removeFirst()
        if let failure { throw failure }
        try crashPoint(.stateMachineRecovered)
        applied.snapshotInstalled(meta)
        metrics.snapshotsInstalled.increment()
        logger.info("installed snapshot", metadata: ["raft.snapshot": "\(meta.index)"])
        // Another restore under way still owns the state machine.
        guard snapshotIO.restoring.isEmpty else { return }
        if let reported = stateMachine.reportedAppliedIndex {
            try verified(reported, after: "installing snapshot \(meta.index) from the leader")
        }
        try applyHeld()
        serveReads()
        try maybeSnapshot()
    }

    /// Holds committed entries while a snapshot is restoring (``Ready``: the snapshot is
    /// restored BEFORE committed entries are applied). Only their last index is kept: they are
    /// durable in the log, and read back from it once the restore is done.
    func hold(_ entries: [LogEntry]) {
        if let last = entries.last?.index { snapshotIO.heldThrough = max(snapshotIO.heldThrough, last) }
    }

    /// Applies the committed entries held while restoring, from the log, in batches.
    func applyHeld() throws(RaftError) {
        let through = snapshotIO.heldThrough
        let budget = node.configuration.raft.maxCommittedBytesPerReady
        while applied.applied < through {
            let batch = try storage.entries(in: (applied.applied + 1)..<(through + 1), maxBytes: budget > 0 ? budget : Int.max)
            guard !batch.isEmpty else { break }
            try apply(batch[...])
        }
    }

    /// Every ``RaftNodeConfiguration/snapshotEvery`` applied entries: start a snapshot.
    func maybeSnapshot() throws(RaftError) {
        let every = node.configuration.snapshotEvery
        guard every > 0, savingSnapshot == nil, snapshotIO.restoring.isEmpty, applied.applied > lastSnapshot,
            lastSnapshot.distance(to: applied.applied) >= Int(every)
        else { return }
        try startSnapshot()
    }

    /// Starts a snapshot of everything applied, if anything is new and none is being saved.
    ///
    /// Step one runs here, between two applies: an on-disk state machine is synced (so the
    /// snapshot is never recorded ahead of its durable state) and the state machine captures a
    /// point-in-time context. Step two, saving that context into the snapshot file, runs on the
    /// snapshot thread while the loop goes on applying and replicating; it ends with a
    /// `snapshotSaved` event, where the snapshot is recorded and the log compacted.
    @discardableResult
    func startSnapshot() throws(RaftError) -> Bool {
        let at = applied.applied
        // While a snapshot restores, the state machine is busy and nothing new is applied.
        guard savingSnapshot == nil, snapshotIO.restoring.isEmpty, at > lastSnapshot else { return false }
        let context: SM.SnapshotContext
        do {
            try stateMachine.sync()
            context = try stateMachine.prepareSnapshot()
        } catch {
            throw RaftError.stateMachine("node \(node.id): preparing the snapshot at \(at)", error)
        }
        // The snapshot records the membership in force at its index (a later change in the log
        // still takes effect when the log is replayed on top of it).
        // Unknown on a node that joined with no membership, below the entry that added it: the
        // snapshot waits until it applied that entry.
        guard let conf = core.membership(at: at) else { return false }
        let output = try storage.beginSnapshot(at: at, confState: conf)
        // A crash here leaves the temporary file behind, as a real one would.
        try crashPoint(.snapshotPrepared)
        savingSnapshot = at
        // Only the context and the output go to the snapshot thread; the save is static, so it
        // cannot reach the live state machine.
        let job = Confined(value: output)
        let inbox = node.inbox
        let id = node.id
        snapshotQueue.async {
            let output = job.value
            var failure: RaftError?
            do {
                try SM.saveSnapshot(context, to: output)
                try output.seal()
            } catch let e as RaftError {
                failure = RaftError(e.code, "node \(id): saving the snapshot at \(at) failed: \(e.message)")
            } catch {
                failure = RaftError.stateMachine("node \(id): saving the snapshot at \(at)", error)
            }
            if !inbox.post(.snapshotSaved(Confined(value: output), failure)) { output.abort() }
        }
        return true
    }

    /// Records a snapshot the snapshot thread saved, and compacts the log behind it.
    func snapshotSaved(_ output: SnapshotOutput, failure: RaftError?) throws(RaftError) {
        savingSnapshot = nil
        if let failure {
            output.abort()
            throw failure  // the waiters fail with it as the loop shuts down
        }
        // A crash here leaves the sealed temporary file behind, as a real one would.
        try crashPoint(.snapshotSaved)
        let waiters = snapshotWaiters
        snapshotWaiters = []
        let at = output.metadata.index
        if at <= storage.snapshotMetadata().index {
            // A newer snapshot from the leader was installed meanwhile.
            output.abort()
            for w in waiters { w.resume(returning: nil) }
            return
        }
        do throws(RaftError) {
            try storage.finishSnapshot(output)
        } catch {
            for w in waiters { w.resume(throwing: error) }
            throw error
        }
        lastSnapshot = max(lastSnapshot, at)
        metrics.snapshotsTaken.increment()
        for w in waiters { w.resume(returning: at) }
        try crashPoint(.snapshotRecorded)
        let trail = node.configuration.compactionTrail
        if at.rawValue > trail, at - trail >= storage.firstIndex() {
            try storage.compact(upTo: at - trail)
        }
        logger.info("took snapshot", metadata: ["raft.snapshot": "\(at)", "raft.first_index": "\(storage.firstIndex())"])
    }

    /// Stops the loop with an injected crash when a test asks for one at `point`.
    func crashPoint(_ point: NodeCrashPoint) throws(RaftError) {
        guard let hook = node.configuration.crashHook, hook(node.id, point) else { return }
        throw RaftError(.io, "node \(node.id): injected crash at \(point)")
    }
}

/// Places in the snapshot paths where tests stop a node as if it crashed
/// (``RaftNodeConfiguration/crashHook``). SPI for RaftTestKit's state machine checks.
@_spi(Testing) public enum NodeCrashPoint: String, Sendable, CaseIterable {
    /// The state machine prepared its context; nothing written yet.
    case snapshotPrepared
    /// The snapshot file is written and synced but not yet renamed into place.
    case snapshotSaved
    /// The snapshot is recorded; the log is not compacted yet.
    case snapshotRecorded
    /// A follower received a whole snapshot from the leader into a temporary file (verified,
    /// written and synced) and the core accepted it; it is not installed yet.
    case snapshotReceived
    /// The received snapshot is installed (renamed into place, the log reset); the state
    /// machine has not started restoring from it.
    case snapshotPersisted
    /// The state machine restored the snapshot (on the snapshot thread); the node has not
    /// recorded it as applied, nor applied the entries held meanwhile.
    case stateMachineRecovered
}
