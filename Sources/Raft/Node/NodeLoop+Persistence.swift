import Logging

// The I/O pipeline: carrying out each Ready in the contract's order, with the disk write
// overlapped with apply where it is safe.
extension NodeLoop {
    /// Carries out every batch the core has ready, in the contract's order.
    ///
    /// When a batch has committed entries that were already durable before it (on a leader that
    /// is all of them: it commits only what its own disk holds), two stages overlap: the I/O
    /// thread writes and syncs the batch's new entries, sends ``Ready/messagesAfterPersist`` as
    /// soon as the sync returns, and meanwhile the loop applies those entries. Otherwise the
    /// loop writes and syncs inline (it runs on its own thread). Committed entries of the batch
    /// itself are applied after the sync, so an on-disk state machine never gets ahead of the
    /// log.
    ///
    /// A batch with a snapshot installs it first (a file already received, renamed into place)
    /// and starts restoring the state machine from it on the snapshot thread. Until that is
    /// done, later batches are persisted and their messages sent as usual, but their committed
    /// entries are held (``hold(_:)``) and applied from the log afterwards.
    func drain() async throws {
        while core.hasReady {
            let rd = try core.ready()
            var leaderChanged = false
            if let ss = rd.softState, ss.leader != lastLeader {
                leaderChanged = true
                lastLeader = ss.leader
                metrics.leaderChanges.increment()
                logger.info("leader changed", metadata: ["raft.leader": "\(ss.leader)", "raft.role": "\(ss.role)", "raft.term": "\(core.term)"])
            }
            if let ss = rd.softState {
                if ss.role == .leader {
                    // A leader installs no snapshot: drop any half received.
                    receiver.assembly = nil
                    abortStaleReceiving()
                } else {
                    senders.cancelAll()
                    closeStaleStreams()
                }
            }
            try send(rd.messages)
            confirmReads(rd.readStates)
            let split = snapshotIO.restoring.isEmpty ? Self.durableCommitted(rd, storageLastIndex: storage.lastIndex()) : 0
            var rest = rd
            if let snapshot = rd.snapshot {
                try installSnapshot(snapshot)
                rest.snapshot = nil
            }
            // While reads are being confirmed, the write goes to the I/O thread even with
            // nothing to apply meanwhile, so the loop takes their rounds' steps during it.
            try await persist(rest, overlap: split > 0 || readsActive) { () throws(RaftError) in
                try self.apply(rd.committedEntries[..<split])
            }
            if let snapshot = rd.snapshot {
                try crashPoint(.snapshotPersisted)
                try restoreSnapshot(snapshot)
            }
            if snapshotIO.restoring.isEmpty {
                try apply(rd.committedEntries[split...])
            } else {
                hold(rd.committedEntries)
            }
            try core.advance(rd)
            if leaderChanged { try retryReadsAfterLeaderChange() }
            try maybeSnapshot()
        }
        dropUnclaimedSnapshots()
        recordReadRounds()
        metrics.term.record(Int64(clamping: core.term.rawValue))
        metrics.commit.record(Int64(clamping: core.commitIndex.rawValue))
        metrics.applied.record(Int64(clamping: applied.applied.rawValue))
    }

    /// How many of `rd`'s committed entries are durable before `rd` is persisted, so they can
    /// be applied while it is: those the storage held (up to `storageLastIndex`) and that the
    /// batch does not replace. A follower's batch may replace a stale suffix and commit the new
    /// entries at once; those wait for the sync, so an on-disk state machine is never ahead of
    /// the log.
    static func durableCommitted(_ rd: Ready, storageLastIndex: LogIndex) -> Int {
        guard rd.snapshot == nil else { return 0 }
        var durable = storageLastIndex
        if let first = rd.entries.first?.index, first <= durable { durable = first - 1 }
        var split = 0
        while split < rd.committedEntries.count && rd.committedEntries[split].index <= durable { split += 1 }
        return split
    }

    /// Sends messages that need nothing durable first. A snapshot is streamed in chunks from
    /// the storage instead of sent whole.
    func send(_ messages: [Message]) throws(RaftError) {
        guard !messages.isEmpty else { return }
        var plain: [Message] = []
        plain.reserveCapacity(messages.count)
        for m in messages {
            guard case .installSnapshot(let s) = m.kind else {
                plain.append(m)
                continue
            }
            try startSending(s, to: m.to, term: m.term)
        }
        node.transport.send(plain)
    }

    /// Persists `rd` and then sends its ``Ready/messagesAfterPersist``; runs `meanwhile` on the
    /// loop while a blocking storage writes, when `overlap` says there is work worth it (entries
    /// to apply, or the steps of read rounds to take).
    /// Otherwise the loop writes and syncs inline: it runs on its own thread
    /// (``LoopExecutor``), so blocking holds up nothing else, and it saves two thread hops.
    func persist(_ rd: Ready, overlap: Bool, meanwhile: () throws(RaftError) -> Void) async throws {
        guard rd.mustSync, offloadIO, overlap else {
            // Nothing to sync (a commit-only hard state is buffered), a storage that does not
            // block, or nothing to do meanwhile: no thread switch.
            if rd.mustSync {
                let start = ContinuousClock.now
                try storage.persist(rd)
                metrics.syncLatency.recordNanoseconds(Int64((ContinuousClock.now - start) / .nanoseconds(1)))
            } else {
                try storage.persist(rd)
            }
            node.transport.send(rd.messagesAfterPersist)
            try meanwhile()
            return
        }
        let start = ContinuousClock.now
        let job = Confined(value: (storage, rd))
        let transport = node.transport
        let inbox = node.inbox
        io.async {
            do throws(RaftError) {
                try job.value.0.persist(job.value.1)
                transport.send(job.value.1.messagesAfterPersist)
                inbox.post(.persisted(nil))
            } catch {
                inbox.post(.persisted(error))
            }
        }
        // The loop's share of the work while the I/O thread writes.
        var overlapped: RaftError?
        do throws(RaftError) { try meanwhile() } catch { overlapped = error }
        // Then, until the write is done, take what needs no storage (the storage belongs to the
        // write until it ends): reads served at once, and the steps of read rounds
        // (``takeDuringPersist(_:)``), whose messages and confirmed reads leave at once.
        // Everything else waits, in order, for the loop's next turn.
        var failure: RaftError?
        waiting: while true {
            let events = await inbox.next()
            // As before each batch of the loop: no lease answer once the ticks are late.
            if overlapped == nil { guardLease() }
            for (k, e) in events.enumerated() {
                if case .persisted(let error) = e {
                    failure = error
                    deferred += events[(k + 1)...]
                    break waiting
                }
                if overlapped == nil, takeDuringPersist(e) { continue }
                deferred.append(e)
            }
            if overlapped == nil { releaseInterimOutput() }
        }
        if overlapped == nil { releaseInterimOutput() }
        metrics.syncLatency.recordNanoseconds(Int64((ContinuousClock.now - start) / .nanoseconds(1)))
        if let failure { throw failure }
        if let overlapped { throw overlapped }
    }
}
