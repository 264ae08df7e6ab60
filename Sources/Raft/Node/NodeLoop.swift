import Dispatch
import Logging
import Metrics

/// A value the run loop hands to its I/O thread and takes back: it is used by one of them at a
/// time, never both.
struct Confined<T>: @unchecked Sendable {
    let value: T
}

/// Everything mutable of a ``RaftNode``, owned by its run loop (not `Sendable` on purpose).
final class NodeLoop<SM: StateMachine> {
    typealias Event = RaftNode<SM>.Event

    struct Pending {
        var term: Term
        var token: UInt64
        var continuation: CheckedContinuation<SM.Result, any Error>
        var deadline: Int
        var started: ContinuousClock.Instant
    }

    unowned let node: RaftNode<SM>
    var core: RaftCore
    let storage: any WritableLogStorage
    let stateMachine: SM
    var applied: AppliedIndexGuard
    var lastSnapshot: LogIndex
    var pending: [LogIndex: Pending] = [:]
    var ticks = 0
    /// Disk I/O runs here, off Swift's cooperative pool.
    let io = DispatchQueue(label: "swift-raft.node.io")
    /// State machine snapshots are saved here, beside apply.
    let snapshotQueue = DispatchQueue(label: "swift-raft.node.snapshot")
    /// The index of the snapshot being saved on `snapshotQueue`, if any.
    var savingSnapshot: LogIndex?
    /// Callers of ``RaftNode/snapshot()`` waiting for the snapshot being saved.
    var snapshotWaiters: [CheckedContinuation<LogIndex?, any Error>] = []
    /// Events taken from the inbox that the loop stopped before handling.
    var unhandled: [Event] = []
    /// The highest proposal token seen, and cancellations that arrived before their proposal.
    var highestToken: UInt64 = 0
    var cancelledEarly: Set<UInt64> = []
    let offloadIO: Bool
    let metrics: NodeMetrics
    var logger: Logger { node.logger }
    var lastLeader: NodeID = .none
    /// Snapshots this node streams to followers, and the one it receives.
    var senders: SnapshotSenders
    var receiver: SnapshotReceiver

    init(node: RaftNode<SM>, storage: any WritableLogStorage, stateMachine: SM) throws {
        self.node = node
        metrics = NodeMetrics(id: node.id, factory: node.configuration.metricsFactory ?? MetricsSystem.factory)
        self.storage = storage
        self.stateMachine = stateMachine
        offloadIO = storage.performsBlockingIO
        let c = node.configuration
        senders = SnapshotSenders(
            me: node.id,
            options: SnapshotStreamOptions(
                chunkBytes: c.snapshotChunkBytes, chunksInFlight: c.snapshotChunksInFlight, retryTicks: c.snapshotRetryTicks,
                maxRetries: c.snapshotMaxRetries),
            seed: UInt64.random(in: 0..<(1 << 48)) << 16)
        receiver = SnapshotReceiver(me: node.id, maxBytes: c.maxSnapshotBytes)
        let meta = storage.snapshotMetadata()
        let durable: LogIndex?
        do { durable = try stateMachine.open() } catch {
            throw RaftError(.stateMachine, "node \(node.id): opening the state machine failed: \(error)")
        }
        if let held = durable {
            // An on-disk state machine: it already holds `held`. Load the snapshot only if it
            // moves the state forward; at exactly `held`, adopt it without reloading.
            applied = try AppliedIndexGuard.opening(stateMachineApplied: held, lastLogIndex: storage.lastIndex())
        } else {
            // An in-memory state machine starts empty.
            applied = AppliedIndexGuard()
        }
        if meta.index > .zero {
            switch applied.decide(snapshotAt: meta.index) {
            case .load:
                let input = try storage.openSnapshot()
                defer { input.close() }
                do {
                    try stateMachine.recoverSnapshot(from: input, metadata: meta)
                } catch {
                    throw RaftError(.stateMachine, "node \(node.id): restoring the state machine from snapshot \(meta.index) failed: \(error)")
                }
                applied.snapshotInstalled(meta)
            case .adoptMetadataOnly, .ignore:
                break
            }
        }
        if let reported = stateMachine.reportedAppliedIndex {
            try applied.verify(reported: reported, after: "opening")
        }
        lastSnapshot = meta.index
        core = try RaftCore(configuration: node.configuration.raft, storage: storage, applied: applied.applied)
    }

    func run() async throws {
        do {
            running: while true {
                let events = await node.inbox.next()
                var proposals: [(command: [UInt8], token: UInt64, continuation: CheckedContinuation<SM.Result, any Error>)] = []
                // Cancellations are handled once the batch's proposals are registered, so one
                // that arrives with its proposal is not lost.
                var cancels: [Event] = []
                for (k, e) in events.enumerated() {
                    switch e {
                    case .propose(let command, let token, let c):
                        highestToken = max(highestToken, token)
                        if !cancelledEarly.isEmpty, cancelledEarly.remove(token) != nil {
                            c.resume(throwing: CancellationError())
                        } else {
                            proposals.append((command, token, c))
                        }
                    case .cancel:
                        cancels.append(e)
                    case .stop:
                        propose(proposals)
                        unhandled = Array(events[(k + 1)...])
                        break running
                    default:
                        do { try handle(e) } catch {
                            // Nothing of this batch may be left waiting: the shutdown answers it.
                            for p in proposals { p.continuation.resume(throwing: error) }
                            unhandled = Array(events[(k + 1)...])
                            throw error
                        }
                    }
                }
                propose(proposals)
                for c in cancels { try handle(c) }
                try await drain()
            }
        } catch {
            await shutDown(with: error)
            throw error
        }
        await shutDown(with: nodeStoppedError(node.id))
    }

    /// Fails everything still waiting, closes the inbox, lets a snapshot being saved finish
    /// (it is then discarded) and closes the storage.
    func shutDown(with error: any Error) async {
        for p in pending.values { p.continuation.resume(throwing: error) }
        pending = [:]
        for w in snapshotWaiters { w.resume(throwing: error) }
        snapshotWaiters = []
        node.fail(unhandled, with: error)
        unhandled = []
        node.failQueued(with: error)
        let queue = snapshotQueue
        await withCheckedContinuation { c in queue.async { c.resume() } }
        // A save that finished after the inbox closed found it closed and removed its file.
        node.failQueued(with: error)
        storage.close()
    }

    func handle(_ e: Event) throws(RaftError) {
        switch e {
        case .message(let m):
            switch m.kind {
            case .snapshotChunk(let chunk):
                receiveChunk(chunk, in: m)
            case .snapshotChunkAck(let ack):
                guard m.to == node.id, m.term == core.term else { return }
                let (messages, outcome) = senders.ack(ack, from: m.from)
                node.transport.send(messages)
                if let outcome { snapshotTransferEnded(outcome) }
            default:
                // A malformed or misaddressed message changes nothing; it is dropped.
                do { try core.step(m) } catch {
                    metrics.droppedMessages.increment()
                    logger.debug("dropped a message", metadata: ["from": "\(m.from)", "error": "\(error.message)"])
                }
            }
        case .tick:
            core.tick()
            ticks += 1
            expireProposals()
            let (messages, outcomes) = senders.tick()
            node.transport.send(messages)
            for o in outcomes { snapshotTransferEnded(o) }
        case .cancel(let token):
            if let (index, p) = pending.first(where: { $0.value.token == token }) {
                pending[index] = nil
                p.continuation.resume(throwing: CancellationError())
            } else if token > highestToken && cancelledEarly.count < 4096 {
                // The cancellation overtook its proposal.
                cancelledEarly.insert(token)
            }
        case .status(let c):
            c.resume(returning: NodeStatus(raft: core.status(), applied: applied.applied, snapshotIndex: lastSnapshot, pendingProposals: pending.count))
        case .campaign:
            core.campaign()
        case .snapshotNow(let c):
            do {
                if savingSnapshot != nil {
                    snapshotWaiters.append(c)
                } else if try startSnapshot() {
                    snapshotWaiters.append(c)
                } else {
                    c.resume(returning: nil)
                }
            } catch {
                // As for an automatic snapshot: a state machine or storage failure stops the node.
                c.resume(throwing: error)
                throw error
            }
        case .snapshotSaved(let output, let failure):
            try snapshotSaved(output.value, failure: failure)
        case .propose, .stop:
            break
        }
    }

    /// Appends all proposals of one batch as one batch.
    func propose(_ batch: [(command: [UInt8], token: UInt64, continuation: CheckedContinuation<SM.Result, any Error>)]) {
        guard !batch.isEmpty else { return }
        do {
            guard let receipt = try core.propose(commands: batch.map(\.command)) else {
                var refusal = RaftError(.notLeader, "node \(node.id) is not the leader", leaderHint: core.leader)
                refusal.leaderAddress = node.configuration.clientAddresses[core.leader]
                for p in batch { p.continuation.resume(throwing: refusal) }
                return
            }
            var index = receipt.firstIndex
            let now = ContinuousClock.now
            for p in batch {
                if let replaced = pending.removeValue(forKey: index) {
                    // An older proposal at this index was lost when another leader overwrote it.
                    replaced.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(index) was replaced after a leader change"))
                }
                pending[index] = Pending(
                    term: receipt.term, token: p.token, continuation: p.continuation,
                    deadline: ticks + node.configuration.proposalTimeoutTicks, started: now)
                index = index + 1
            }
        } catch {
            var refusal = error
            if refusal.code == .notLeader, let leader = refusal.leaderHint {
                refusal.leaderAddress = node.configuration.clientAddresses[leader]
            }
            for p in batch { p.continuation.resume(throwing: refusal) }
        }
    }

    func expireProposals() {
        for (index, p) in pending where p.deadline <= ticks {
            pending[index] = nil
            p.continuation.resume(throwing: RaftError(.timeout, "proposal at index \(index) got no result within \(node.configuration.proposalTimeoutTicks) ticks; it may still be committed"))
        }
    }

    /// Carries out every batch the core has ready, in the contract's order.
    ///
    /// When a batch has committed entries that were already durable before it (on a leader that
    /// is all of them: it commits only what its own disk holds), two stages overlap: the I/O
    /// thread writes and syncs the batch's new entries, sends ``Ready/messagesAfterPersist`` as
    /// soon as the sync returns, and meanwhile the loop applies those entries. Otherwise the
    /// loop writes and syncs inline (it runs on its own thread). Committed entries of the batch
    /// itself are applied after the sync, so an on-disk state machine never gets ahead of the
    /// log.
    func drain() async throws {
        while core.hasReady {
            let rd = core.ready()
            if let ss = rd.softState, ss.leader != lastLeader {
                lastLeader = ss.leader
                metrics.leaderChanges.increment()
                logger.info("leader changed", metadata: ["raft.leader": "\(ss.leader)", "raft.role": "\(ss.role)", "raft.term": "\(core.term)"])
            }
            if let ss = rd.softState, ss.role != .leader { senders.cancelAll() }
            send(rd.messages)
            let split = Self.durableCommitted(rd, storageLastIndex: storage.lastIndex())
            if rd.snapshot != nil { try crashPoint(.snapshotReceived) }
            try await persist(rd, overlap: split > 0) { () throws(RaftError) in
                try self.apply(rd.committedEntries[..<split])
            }
            if rd.snapshot != nil { try crashPoint(.snapshotPersisted) }
            try applySnapshot(rd)
            try apply(rd.committedEntries[split...])
            core.advance(rd)
            try maybeSnapshot()
        }
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

    /// Sends messages that need nothing durable first. A snapshot is streamed in chunks
    /// instead of sent whole.
    func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        var plain: [Message] = []
        plain.reserveCapacity(messages.count)
        for m in messages {
            guard case .installSnapshot(let s) = m.kind else {
                plain.append(m)
                continue
            }
            metrics.snapshotsSent.increment()
            logger.info("streaming snapshot", metadata: ["to": "\(m.to)", "raft.snapshot": "\(s.snapshot.metadata.index)", "bytes": "\(s.snapshot.data.count)"])
            plain += senders.start(s.snapshot, to: m.to, term: m.term)
        }
        node.transport.send(plain)
    }

    /// A follower's snapshot chunk: reassembled, and stepped into the core once complete.
    func receiveChunk(_ chunk: SnapshotChunk, in m: Message) {
        // Chunks of a deposed leader are not answered; its term reaches it another way.
        guard m.to == node.id, m.term >= core.term else { return }
        switch receiver.receive(chunk, from: m.from, term: m.term) {
        case .reply(let r):
            node.transport.send([r])
        case .complete(let install, let reply):
            do { try core.step(install) } catch {
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

    /// Persists `rd` and then sends its ``Ready/messagesAfterPersist``; runs `meanwhile` on the
    /// loop while a blocking storage writes, when `overlap` says there is work worth it.
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
        var overlapped: RaftError?
        let result: Result<Void, RaftError> = await withCheckedContinuation { c in
            io.async {
                do throws(RaftError) {
                    try job.value.0.persist(job.value.1)
                    transport.send(job.value.1.messagesAfterPersist)
                    c.resume(returning: .success(()))
                } catch {
                    c.resume(returning: .failure(error))
                }
            }
            // The loop's share of the work while the I/O thread writes.
            do throws(RaftError) { try meanwhile() } catch { overlapped = error }
        }
        metrics.syncLatency.recordNanoseconds(Int64((ContinuousClock.now - start) / .nanoseconds(1)))
        try result.get()
        if let overlapped { throw overlapped }
    }

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

    /// Applies committed entries and answers their proposers.
    func apply(_ entries: ArraySlice<LogEntry>) throws(RaftError) {
        guard !entries.isEmpty else { return }
        let fresh = try applied.admit(entries)
        guard let last = fresh.last else { return }
        let results: [SM.Result]
        do {
            results = try stateMachine.apply(fresh)
        } catch {
            throw RaftError(.stateMachine, "node \(node.id): applying entries \(fresh.first!.index)...\(last.index) failed: \(error)")
        }
        guard results.count == fresh.count else {
            throw RaftError(.stateMachine, "node \(node.id): the state machine returned \(results.count) results for \(fresh.count) entries")
        }
        applied.applied(through: last)
        if let reported = stateMachine.reportedAppliedIndex {
            try verified(reported, after: "applying entries \(fresh.first!.index)...\(last.index)")
        }
        var k = results.startIndex
        for e in fresh {
            let r = results[k]
            k += 1
            guard !pending.isEmpty, let p = pending.removeValue(forKey: e.index) else { continue }
            if e.term == p.term {
                metrics.proposalLatency.recordNanoseconds(Int64((ContinuousClock.now - p.started) / .nanoseconds(1)))
                p.continuation.resume(returning: r)
            } else {
                p.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(e.index) was replaced after a leader change"))
            }
        }
    }

    func verified(_ reported: LogIndex, after operation: String) throws(RaftError) {
        do { try applied.verify(reported: reported, after: operation) } catch {
            throw RaftError(.stateMachine, "node \(node.id): \(error.message)")
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
