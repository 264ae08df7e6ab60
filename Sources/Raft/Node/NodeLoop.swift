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
        var continuation: ProposalAnswer<SM.Result>
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
    var reads = PendingReads<SM>()
    /// The core's count of read rounds last added to the metrics.
    var readRoundsRecorded: UInt64 = 0
    /// The tick at which this node last saw a linearizable or lease read, or a message of a
    /// read round (``readsActive``).
    var readActivityTick = Int.min / 2
    /// Callers of membership changes and transfers (NodeLoop+Membership).
    var membershipWaiters: [MembershipWaiter] = []
    /// The membership last told to the transport; `nil` before the first report.
    var reportedMembership: ConfState?
    /// The membership before the latest change last reported, while that change was pending.
    var reportedPrevious: ConfState?
    var ticks = 0
    /// When the ticker started, by the node's clock (``RaftNode/elapsed``): tick `k` is due
    /// `k` intervals after it.
    var tickOrigin: Duration = .zero
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
    /// Events that arrived while a batch was being persisted (NodeLoop+Persistence), in
    /// order: the loop handles them before anything newer.
    var deferred: [Event] = []
    let offloadIO: Bool
    let metrics: NodeMetrics
    var logger: Logger { node.logger }
    var lastLeader: NodeID = .none
    /// Snapshots this node streams to followers, and the one it receives.
    var senders: SnapshotSenders
    var receiver: SnapshotReceiver
    /// The snapshot work handed to other threads (NodeLoop+SnapshotTransfer).
    var snapshotIO = SnapshotIO()
    /// What opening the storage found, reported in the status.
    let storageRecovery: StorageRecoveryReport?

    init(node: RaftNode<SM>, storage: any WritableLogStorage, stateMachine: SM) throws {
        self.node = node
        storageRecovery = storage.recoveryReport
        if let report = storageRecovery { Self.log(report, to: node.logger) }
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
        do { durable = try stateMachine.openDurableState() } catch {
            throw RaftError.stateMachine("node \(node.id): opening the state machine", error)
        }
        if let held = durable {
            // An on-disk state machine: it already holds `held`. Load the snapshot only if it
            // moves the state forward; at exactly `held`, adopt it without reloading.
            do { applied = try AppliedIndexGuard.opening(stateMachineApplied: held, lastLogIndex: storage.lastIndex()) } catch {
                throw error.on(node.id)
            }
        } else {
            // An in-memory state machine starts empty.
            applied = AppliedIndexGuard()
        }
        // The step after which the state machine's own index is checked.
        var step = "opening the state machine"
        if meta.index > .zero {
            switch applied.decide(snapshotAt: meta.index) {
            case .load:
                let input = try storage.openSnapshot()
                defer { input.close() }
                do {
                    try stateMachine.recoverSnapshot(from: input, metadata: meta)
                } catch {
                    throw RaftError.stateMachine("node \(node.id): restoring the state machine from snapshot \(meta.index)", error)
                }
                applied.snapshotInstalled(meta)
                step = "restoring snapshot \(meta.index) at startup"
            case .adoptMetadataOnly, .ignore:
                break
            }
        }
        if let reported = stateMachine.reportedAppliedIndex {
            do { try applied.verify(reported: reported, after: step) } catch { throw error.on(node.id) }
        }
        lastSnapshot = meta.index
        core = try RaftCore(configuration: node.configuration.raft, storage: storage, applied: applied.applied)
    }

    func run() async throws {
        do {
            running: while true {
                let events: [Event]
                if deferred.isEmpty {
                    events = await node.inbox.next()
                } else {
                    events = deferred + node.inbox.takeNow()
                    deferred = []
                }
                guardLease()
                var proposals: [RaftNode<SM>.Proposal] = []
                // Cancellations are handled once the batch's proposals are registered, so one
                // that arrives with its proposal is not lost. (A cancellation never arrives
                // before its proposal: ``RaftNode/propose(_:)`` posts it only once the proposal
                // is posted.)
                var cancels: [Event] = []
                for (k, e) in events.enumerated() {
                    switch e {
                    case .propose(let p):
                        proposals.append(p)
                    case .cancel:
                        cancels.append(e)
                    case .stop:
                        unhandled = Array(events[(k + 1)...])
                        try propose(proposals)
                        break running
                    default:
                        do { try handle(e) } catch {
                            // Nothing of this batch may be left waiting: the shutdown answers it.
                            for p in proposals { p.reply.fail(error) }
                            unhandled = Array(events[(k + 1)...])
                            throw error
                        }
                    }
                }
                try propose(proposals)
                for c in cancels { try handle(c) }
                try await drain()
                try checkMembershipWaiters()
            }
        } catch {
            await shutDown(with: error)
            throw error
        }
        // An orderly stop (stop(), graceful shutdown, a cancelled run): make what the state
        // machine applied durable, so an on-disk one restarts where it stopped instead of being
        // fed the same entries again. A failure stops the node with it, like any other. A
        // restore running on the snapshot thread finishes first: syncing beside it would race it
        // (and could persist a half-restored state).
        let queue = snapshotQueue
        await withCheckedContinuation { c in queue.async { c.resume() } }
        do { try stateMachine.sync() } catch {
            let failure = RaftError.stateMachine("node \(node.id): syncing the state machine on stop", error)
            await shutDown(with: failure)
            throw failure
        }
        await shutDown(with: nodeStoppedError(node.id))
    }

    /// Fails everything still waiting, closes the inbox, lets a snapshot being saved finish
    /// (it is then discarded) and closes the storage.
    func shutDown(with error: any Error) async {
        for p in pending.values { p.continuation.resume(throwing: error) }
        pending = [:]
        failReads(error)
        failMembershipWaiters(error)
        for w in snapshotWaiters { w.resume(throwing: error) }
        snapshotWaiters = []
        node.fail(unhandled, with: error)
        unhandled = []
        node.fail(deferred, with: error)
        deferred = []
        node.failQueued(with: error)
        for queue in [snapshotQueue, snapshotIO.transferQueue] {
            await withCheckedContinuation { c in queue.async { c.resume() } }
        }
        // A save that finished after the inbox closed found it closed and removed its file.
        node.failQueued(with: error)
        releaseSnapshotTransfers()
        storage.close()
    }

    /// Logs what opening the storage found, at info: one line, with what was repaired (the file
    /// and offset of a torn tail cut off, and why, and what it held; damaged snapshots skipped,
    /// files removed), what was lost, and what was left alone.
    static func log(_ report: StorageRecoveryReport, to logger: Logger) {
        var metadata: Logger.Metadata = ["raft.storage.segments": "\(report.segments)", "raft.storage.entries": "\(report.entries)"]
        if let tail = report.truncatedTail {
            var cut = "\(tail.file) at offset \(tail.offset): \(tail.bytes) bytes cut off (\(tail.reason))"
            if let entries = tail.entries { cut += ", holding entries \(entries.lowerBound)...\(entries.upperBound)" }
            if !tail.hardStates.isEmpty { cut += ", \(tail.hardStates.count) hard states" }
            metadata["raft.storage.torn_tail"] = "\(cut)"
        }
        if let kept = report.restoredHardState {
            metadata["raft.storage.restored_hard_state"] = "term \(kept.term), vote \(kept.vote) (from the cut tail)"
        }
        if let lost = report.lostCommittedEntries {
            metadata["raft.storage.lost_committed_entries"] = "\(lost.lowerBound)...\(lost.upperBound)"
        }
        if let segment = report.removedEmptySegment { metadata["raft.storage.removed_empty_segment"] = "\(segment)" }
        if !report.removedTemporaryFiles.isEmpty {
            metadata["raft.storage.removed_temporary_files"] = "\(report.removedTemporaryFiles.joined(separator: ", "))"
        }
        if !report.skippedSnapshots.isEmpty { metadata["raft.storage.skipped_snapshots"] = "\(report.skippedSnapshots.joined(separator: "; "))" }
        if !report.unknownFiles.isEmpty { metadata["raft.storage.unknown_files"] = "\(report.unknownFiles.joined(separator: ", "))" }
        if let index = report.completedSnapshotInstall { metadata["raft.storage.completed_snapshot_install"] = "\(index)" }
        logger.info("storage opened", metadata: metadata)
    }

    /// The committed entries of `entries` the state machine does not hold yet; a gap or a term
    /// going backwards stops the node (see ``AppliedIndexGuard/admit(_:)-(ArraySlice<LogEntry>)``).
    func admitted(_ entries: ArraySlice<LogEntry>) throws(RaftError) -> ArraySlice<LogEntry> {
        do { return try applied.admit(entries) } catch { throw error.on(node.id) }
    }

    func handle(_ e: Event) throws(RaftError) {
        switch e {
        case .message(let m):
            // From nobody or from itself: a broken transport or a hostile peer. The core refuses
            // such messages too; chunks and their acknowledgements never reach it.
            if m.from.isNone || m.from == node.id {
                metrics.droppedMessages.increment()
                logger.debug("dropped a message with an invalid sender", metadata: ["from": "\(m.from)"])
                return
            }
            switch m.kind {
            case .snapshotChunk(let chunk):
                // Only the leader of this term (or a node of a later term, whose leadership the
                // core has not heard of yet) may stream a snapshot here: a delayed chunk from a
                // deposed leader or any other peer must not replace the live transfer.
                guard m.term > core.term || core.leader.isNone || m.from == core.leader else {
                    metrics.droppedMessages.increment()
                    logger.debug("dropped a snapshot chunk from a node that is not the leader", metadata: ["from": "\(m.from)"])
                    return
                }
                try receiveChunk(chunk, in: m)
            case .snapshotChunkAck(let ack):
                guard m.to == node.id, m.term == core.term else { return }
                try carryOut(senders.ack(ack, from: m.from))
            case .installSnapshot(let s) where s.data.namesReceivedFile || s.data.isWholeBytes:
                // A node receives snapshots only as chunks: a whole one would be held in memory
                // and written on the loop, and one naming a received file is bogus (only this
                // node's receiver names its own files).
                metrics.droppedMessages.increment()
                logger.debug("dropped a whole snapshot sent as one message", metadata: ["from": "\(m.from)"])
            default:
                noteReadActivity(m)
                // A malformed or misaddressed message changes nothing; it is dropped. A storage
                // failure stops the node.
                do { try core.step(m) } catch {
                    if core.storageFailure != nil { throw error }
                    metrics.droppedMessages.increment()
                    logger.debug("dropped a message", metadata: ["from": "\(m.from)", "error": "\(error.message)"])
                }
            }
        case .tick:
            try core.tick()
            ticks += 1
            expireProposals()
            try tickReads()
            try carryOut(senders.tick())
        case .cancel(let token):
            // Every entry of the proposal (a batch has several); one that was answered already
            // is not pending any more, and its cancellation changes nothing.
            for (index, p) in pending where p.token == token {
                pending[index] = nil
                p.continuation.resume(throwing: CancellationError())
            }
        case .status(let c):
            c.resume(
                returning: NodeStatus(
                    raft: core.status(), applied: applied.applied, snapshotIndex: lastSnapshot, pendingProposals: pending.count,
                    restoringSnapshot: snapshotIO.restoring.last?.index, storageRecovery: storageRecovery))
        case .campaign(let c):
            do { c.resume(returning: try core.campaign()) } catch {
                c.resume(throwing: error)
                throw error
            }
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
        case .snapshotWork(let work):
            try handle(work)
        case .read(let r):
            try handleRead(r)
        case .cancelRead(let token):
            if let read = reads.byToken.removeValue(forKey: token) {
                reads.confirmed.remove(token)
                read.request.fail(CancellationError())
            }
        case .transport(let event):
            handle(event)
        case .membership(let request):
            try handle(request)
        case .propose, .stop, .persisted:
            break
        }
    }
}

extension RaftError {
    /// The same error, its message prefixed with the node it happened on.
    func on(_ node: NodeID) -> RaftError {
        var e = RaftError(code, "node \(node): \(message)", leaderHint: leaderHint, file: file, line: line)
        e.leaderAddress = leaderAddress
        return e
    }
}

extension SnapshotData {
    /// Whether the data came whole in the message (``SnapshotData/bytes(_:)``).
    var isWholeBytes: Bool {
        if case .bytes = self { return true }
        return false
    }
}
