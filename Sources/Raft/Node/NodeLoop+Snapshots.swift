import Logging

// Snapshots: taking them beside apply, installing the leader's, streaming them in chunks, and
// the crash points tests inject around them.
extension NodeLoop {
    /// Restores the state machine from a snapshot the leader sent, if it moves it forward.
    func applySnapshot(_ rd: Ready) throws(RaftError) {
        if let snap = rd.snapshot {
            switch applied.decide(snapshotAt: snap.metadata.index) {
            case .load:
                do {
                    try stateMachine.recoverSnapshot(from: SnapshotInput(snap.data), metadata: snap.metadata)
                } catch {
                    throw RaftError(.stateMachine, "node \(node.id): restoring snapshot \(snap.metadata.index) failed: \(error)")
                }
                try crashPoint(.stateMachineRecovered)
                applied.snapshotInstalled(snap.metadata)
                metrics.snapshotsInstalled.increment()
                logger.info("installed snapshot", metadata: ["raft.snapshot": "\(snap.metadata.index)"])
                if let reported = stateMachine.reportedAppliedIndex {
                    try verified(reported, after: "restoring snapshot \(snap.metadata.index)")
                }
            case .adoptMetadataOnly:
                applied.snapshotInstalled(snap.metadata)
            case .ignore:
                break
            }
            lastSnapshot = max(lastSnapshot, snap.metadata.index)
            // Proposals at or below the snapshot will never be applied here.
            for (index, p) in pending where index <= snap.metadata.index {
                pending[index] = nil
                p.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(index) was superseded by a snapshot; its outcome is unknown"))
            }
        }
    }

    /// Every ``RaftNodeConfiguration/snapshotEvery`` applied entries: start a snapshot.
    func maybeSnapshot() throws(RaftError) {
        let every = node.configuration.snapshotEvery
        guard every > 0, savingSnapshot == nil, applied.applied > lastSnapshot,
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
        guard savingSnapshot == nil, at > lastSnapshot else { return false }
        let context: SM.SnapshotContext
        do {
            try stateMachine.sync()
            context = try stateMachine.prepareSnapshot()
        } catch {
            throw RaftError(.stateMachine, "node \(node.id): preparing the snapshot at \(at) failed: \(error)")
        }
        let output = try storage.beginSnapshot(at: at, confState: nil)
        // A crash here leaves the temporary file behind, as a real one would.
        try crashPoint(.snapshotPrepared)
        savingSnapshot = at
        let job = Confined(value: (stateMachine, context, output))
        let inbox = node.inbox
        let id = node.id
        snapshotQueue.async {
            let (machine, context, output) = job.value
            var failure: RaftError?
            do {
                try machine.saveSnapshot(context, to: output)
                try output.seal()
            } catch let e as RaftError {
                failure = RaftError(e.code, "node \(id): saving the snapshot at \(at) failed: \(e.message)")
            } catch {
                failure = RaftError(.stateMachine, "node \(id): saving the snapshot at \(at) failed: \(error)")
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

    /// A follower's snapshot chunk: reassembled, and stepped into the core once complete.
    func receiveChunk(_ chunk: SnapshotChunk, in m: Message) throws(RaftError) {
        // Chunks of a deposed leader are not answered; its term reaches it another way.
        guard m.to == node.id, m.term >= core.term else { return }
        switch receiver.receive(chunk, from: m.from, term: m.term) {
        case .reply(let r):
            node.transport.send([r])
        case .complete(let install, let reply):
            do { try core.step(install) } catch {
                if core.storageFailure != nil { throw error }
                metrics.droppedMessages.increment()
                logger.info("refused a snapshot", metadata: ["from": "\(m.from)", "error": "\(error.message)"])
            }
            node.transport.send([reply])
        case .invalid(let why):
            metrics.droppedMessages.increment()
            logger.debug("dropped a snapshot chunk", metadata: ["from": "\(m.from)", "error": "\(why)"])
        }
    }

    /// Tells the core how a snapshot transfer ended.
    func snapshotTransferEnded(_ outcome: SnapshotSenders.Outcome) {
        switch outcome {
        case .finished(let peer):
            core.reportSnapshot(to: peer, failed: false)
        case .failed(let peer):
            logger.info("snapshot transfer failed; the leader will retry", metadata: ["to": "\(peer)"])
            core.reportSnapshot(to: peer, failed: true)
        }
    }

    /// Stops the loop with an injected crash when a test asks for one at `point`.
    func crashPoint(_ point: NodeCrashPoint) throws(RaftError) {
        guard let hook = node.configuration.crashHook, hook(node.id, point) else { return }
        throw RaftError(.io, "node \(node.id): injected crash at \(point)")
    }
}

/// Places in the snapshot paths where tests stop a node as if it crashed
/// (``RaftNodeConfiguration/crashHook``).
enum NodeCrashPoint: String, Sendable, CaseIterable {
    /// The state machine prepared its context; nothing written yet.
    case snapshotPrepared
    /// The snapshot file is written and synced but not yet renamed into place.
    case snapshotSaved
    /// The snapshot is recorded; the log is not compacted yet.
    case snapshotRecorded
    /// A follower received a snapshot from the leader and has not persisted it.
    case snapshotReceived
    /// The received snapshot is persisted; the state machine has not recovered from it.
    case snapshotPersisted
    /// The state machine recovered from the snapshot; the node has not recorded it as applied.
    case stateMachineRecovered
}
