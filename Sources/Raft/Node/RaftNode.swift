import Dispatch
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// How a ``RaftNode`` runs, on top of the protocol's ``RaftConfiguration``.
public struct RaftNodeConfiguration: Sendable {
    /// The protocol configuration. A node always refuses proposals on followers (with the
    /// leader's id, so clients can redirect): a forwarded proposal could not report its result.
    public var raft: RaftConfiguration
    /// Real time per tick. With the default 1-tick heartbeat and 10-tick election timeout this
    /// gives a 100 ms heartbeat and a 1–2 s election timeout.
    public var tickInterval: Duration = .milliseconds(100)
    /// Take a snapshot every this many applied entries; zero never.
    public var snapshotEvery: UInt64 = 10_000
    /// Entries kept behind a snapshot when compacting, so a slightly slow follower catches up
    /// from the log rather than a snapshot.
    public var compactionTrail: UInt64 = 1_000
    /// Ticks a proposal may wait for its result before failing with a timeout.
    public var proposalTimeoutTicks: Int = 50
    /// Ticks a linearizable or lease read may wait for its read index to be confirmed and
    /// applied before failing with ``RaftError/Code/timeout``. A read that finds no leader (an
    /// election) or whose request or answer was lost is retried meanwhile.
    public var readTimeoutTicks: Int = 30
    /// Where the node's metrics go; `nil` uses the process-wide `MetricsSystem` (bootstrap it
    /// once at startup).
    public var metricsFactory: (any MetricsFactory)?
    /// Where clients reach each member (a URL, `host:port`): a refusal with
    /// ``RaftError/Code/notLeader`` carries the leader's in ``RaftError/leaderAddress``.
    public var clientAddresses: [NodeID: String] = [:]
    /// Snapshots are streamed to followers in chunks of this many bytes.
    public var snapshotChunkBytes: Int = 512 << 10
    /// Chunks sent ahead of the receiver's acknowledgement. It also bounds the memory a
    /// transfer holds: `snapshotChunkBytes * snapshotChunksInFlight` bytes of the snapshot, read
    /// ahead of the acknowledgement and kept for resending.
    public var snapshotChunksInFlight: Int = 4
    /// Ticks without progress after which a snapshot transfer resends from the last
    /// acknowledged byte.
    public var snapshotRetryTicks: Int = 5
    /// Stalls in a row after which a transfer is given up; the leader sends the snapshot again
    /// later.
    public var snapshotMaxRetries: Int = 5
    /// The largest snapshot this node accepts from a leader, in bytes.
    public var maxSnapshotBytes: UInt64 = 16 << 30
    /// How close to the leader's last index a learner's log must be before
    /// ``RaftNode/addVoter(_:address:)`` or ``RaftNode/promote(_:)`` makes it a voter (thesis
    /// §4.2.1): a voter that far behind catches up within a round or two of appends.
    public var catchUpEntries: UInt64 = 1_000
    /// Ticks a membership change, a learner's catch-up, or a leadership transfer may take before
    /// its caller gets ``RaftError/Code/timeout`` (the change may still complete). With the
    /// default 100 ms tick, one minute.
    public var membershipTimeoutTicks: Int = 600
    /// Tests only: asked at each ``NodeCrashPoint``; returning `true` stops the node there with
    /// an error, as if the process died (unsynced writes are dropped). SPI for RaftTestKit's
    /// state machine checks (`@_spi(Testing) import Raft`); not part of the supported API.
    @_spi(Testing) public var crashHook: (@Sendable (NodeID, NodeCrashPoint) -> Bool)?

    /// Creates a configuration for node `id` with defaults.
    public init(id: NodeID) { raft = RaftConfiguration(id: id) }
}

/// One Raft replica: a ``RaftCore``, its storage, a transport and your ``StateMachine``, driven
/// by one run loop.
///
/// It is a `ServiceLifecycle.Service`: run it in a `ServiceGroup` and it stops on graceful
/// shutdown. It logs through the `Logger` you pass (info and below) and exports metrics through
/// swift-metrics (term, commit and applied index, leader changes, proposal and fsync latency,
/// snapshots taken, installed and sent, dropped messages), dimensioned by node id.
///
/// Every public method only queues an event for the loop and waits for its answer, so nothing
/// re-enters the core halfway. Events that arrive while the loop persists a batch go into the
/// next batch: many concurrent proposals share one append and one sync. Ticks come from the
/// injected clock. Run it with ``run()`` (it returns when ``stop()`` is called, or throws if
/// the storage or the state machine fails: a node never crashes the process).
///
/// Threads and pipelining: the run loop runs on a serial queue of its own, off Swift's
/// cooperative pool, so it may block on the disk. A leader's appends leave before its own disk
/// write (``Ready/messages``). When a batch has committed entries to apply, an I/O thread writes
/// and syncs it while the loop applies them; otherwise the loop syncs inline, saving two thread
/// hops. State machine snapshots are saved on a third thread, beside apply, and a snapshot from
/// the leader is restored there too while the loop goes on answering. Snapshot transfers read
/// and write their chunks on a fourth thread: a snapshot is never whole in memory and never
/// read, checksummed or written on the loop (see "Snapshots are streams, off the loop" in the
/// documentation's overview).
public final class RaftNode<SM: StateMachine>: Service, Sendable {
    enum Event: Sendable {
        case message(Message)
        case tick
        case propose(Proposal)
        case cancel(UInt64)
        case status(CheckedContinuation<NodeStatus?, Never>)
        case campaign(CheckedContinuation<Bool, any Error>)
        case snapshotNow(CheckedContinuation<LogIndex?, any Error>)
        case snapshotSaved(Confined<SnapshotOutput>, RaftError?)
        case snapshotWork(SnapshotWork)
        case read(ReadRequest)
        case cancelRead(UInt64)
        /// The I/O thread finished persisting a batch (with its failure, if any).
        case persisted(RaftError?)
        /// Feedback from the transport (RaftNode+TransportEvents).
        case transport(TransportEvent)
        /// A membership change or leadership transfer (RaftNode+Membership).
        case membership(MembershipRequest)
        case stop
    }

    /// What the caller handed over (as `sending` values, so nobody else holds them), waiting in
    /// the mutex until ``run()`` takes it out for the run loop, which owns it from then on.
    struct Parts {
        let storage: any WritableLogStorage
        let stateMachine: SM
    }

    /// This node's id.
    public let id: NodeID
    let configuration: RaftNodeConfiguration
    let inbox = Inbox<Event>()
    let parts: Mutex<Parts?>
    let transport: any RaftTransport
    /// Posts a tick to the inbox every tick interval of the injected clock.
    let ticker: @Sendable (Duration, Inbox<Event>) async -> Void
    let nextProposal = Atomic<UInt64>(0)
    let logger: Logger
    /// Time since this node was created, by its injected clock.
    let elapsed: @Sendable () -> Duration

    /// Creates a node. Nothing happens until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: the node's identity, timing and limits; checked here (an invalid one
    ///     throws ``RaftError/Code/invalidConfiguration``).
    ///   - storage: the node's log (``FileLogStorage`` for real use). It must hold the cluster's
    ///     voters (bootstrap) or an existing log. Handed over (`sending`): the node writes it from
    ///     its own threads and closes it when it stops, when it fails to start, and when this
    ///     initializer throws (a configuration it refuses), so the compiler refuses code that
    ///     keeps using it.
    ///   - stateMachine: yours, handed over (`sending`): the node is its only user from now on,
    ///     and the compiler refuses code that keeps the object and uses it afterwards, since that
    ///     would race ``StateMachine/apply(_:)``. See ``StateMachine`` for how to look at the
    ///     state from outside.
    ///   - transport: carries the node's messages to its peers and delivers theirs with
    ///     ``RaftNode/receive(_:)`` (see ``RaftTransport``).
    ///   - clock: ticks every ``RaftNodeConfiguration/tickInterval`` of this clock; inject a
    ///     manual clock in tests.
    ///   - logger: where the node logs (info and below); silent by default.
    public init<C: Clock & Sendable>(
        configuration: RaftNodeConfiguration, storage: sending any WritableLogStorage, stateMachine: sending SM,
        transport: any RaftTransport, clock: C = ContinuousClock(),
        logger: Logger = Logger(label: "swift-raft", factory: { _ in SwiftLogNoOpLogHandler() })
    ) throws(RaftError) where C.Duration == Duration {
        let c: RaftNodeConfiguration
        do { c = try Self.validated(configuration) } catch {
            // The caller handed the storage over and cannot close it: release its files here.
            storage.close()
            throw error
        }
        id = c.raft.id
        self.configuration = c
        parts = Mutex(Parts(storage: storage, stateMachine: stateMachine))
        self.transport = transport
        var l = logger
        l[metadataKey: "raft.node"] = "\(c.raft.id)"
        self.logger = l
        ticker = { interval, inbox in await tickLoop(clock: clock, every: interval, into: inbox, tick: Event.tick) }
        let origin = clock.now
        elapsed = { origin.duration(to: clock.now) }
        attachToTransport()
    }

    /// `configuration` as the node runs it, or why it cannot.
    static func validated(_ configuration: RaftNodeConfiguration) throws(RaftError) -> RaftNodeConfiguration {
        var c = configuration
        c.raft.refuseProposalsOnFollower = true
        // The node streams snapshots from its storage; the core never reads their data.
        c.raft.snapshotSending = .streamedByShell
        try c.raft.validate()
        if c.tickInterval <= .zero { throw RaftError(.invalidConfiguration, "tickInterval must be positive") }
        if c.proposalTimeoutTicks < 1 { throw RaftError(.invalidConfiguration, "proposalTimeoutTicks must be at least 1") }
        if c.readTimeoutTicks < 1 { throw RaftError(.invalidConfiguration, "readTimeoutTicks must be at least 1") }
        if c.snapshotChunkBytes < 1 { throw RaftError(.invalidConfiguration, "snapshotChunkBytes must be at least 1") }
        if c.snapshotChunksInFlight < 1 { throw RaftError(.invalidConfiguration, "snapshotChunksInFlight must be at least 1") }
        if c.snapshotRetryTicks < 1 { throw RaftError(.invalidConfiguration, "snapshotRetryTicks must be at least 1") }
        if c.snapshotMaxRetries < 0 { throw RaftError(.invalidConfiguration, "snapshotMaxRetries must not be negative") }
        if c.membershipTimeoutTicks < 1 { throw RaftError(.invalidConfiguration, "membershipTimeoutTicks must be at least 1") }
        if c.maxSnapshotBytes > UInt64(Int.max) { throw RaftError(.invalidConfiguration, "maxSnapshotBytes must be at most \(Int.max)") }
        return c
    }

    // MARK: Public API

    /// Runs the node until ``stop()``. Throws if it cannot start or its storage or state machine
    /// fails; pending proposals then fail with the same error. Whichever way it ends, the
    /// storage is closed before it returns (a ``FileLogStorage`` releases its directory's lock).
    public func run() async throws {
        guard let p = parts.withLock({ (p: inout sending Parts?) -> sending Parts? in
            let taken = p
            p = nil
            return taken
        }) else {
            throw RaftError(.invalidConfiguration, "node \(id) is already running or was run before")
        }
        // The loop runs on a thread of its own, where it may block on the disk: opening the
        // state machine and restoring a snapshot at start included.
        let executor = LoopExecutor(label: "swift-raft.node.\(id).loop")
        let loop: NodeLoop<SM>
        do {
            loop = try await withTaskExecutorPreference(executor) {
                do { return try NodeLoop(node: self, storage: p.storage, stateMachine: p.stateMachine) } catch {
                    // A failed start releases what it took: the storage's files and its lock, so
                    // a new storage on the same directory can open.
                    p.storage.close()
                    throw error
                }
            }
        } catch {
            // Nobody will ever answer: fail whatever is queued and refuse what comes.
            failQueued(with: error)
            throw error
        }
        loop.tickOrigin = elapsed()
        let ticks = Task { [inbox, configuration, ticker] in await ticker(configuration.tickInterval, inbox) }
        defer { ticks.cancel() }
        logger.info("node started", metadata: ["raft.term": "\(loop.core.term)", "raft.applied": "\(loop.applied.applied)"])
        do {
            // Graceful shutdown and task cancellation both stop the loop the orderly way.
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await withTaskExecutorPreference(executor) {
                        try await loop.run()
                    }
                } onGracefulShutdown: { [inbox] in
                    inbox.post(.stop)
                }
            } onCancel: { [inbox] in
                inbox.post(.stop)
            }
        } catch {
            logger.info("node stopped on an error", metadata: ["error": "\(error)"])
            throw error
        }
        logger.info("node stopped")
    }

    /// Takes a snapshot now (of everything applied) and compacts the log behind it. Returns the
    /// snapshot's index once it is recorded, or `nil` if nothing was applied since the last one.
    /// If a snapshot is being saved already, waits for that one instead.
    @discardableResult
    public func snapshot() async throws -> LogIndex? {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<LogIndex?, any Error>) in
            if !inbox.post(.snapshotNow(c)) { c.resume(throwing: nodeStoppedError(id)) }
        }
    }

    /// Proposes a command; returns the state machine's result once it is committed and applied.
    ///
    /// Throws ``RaftError/Code/notLeader`` (with ``RaftError/leaderHint``) on a follower,
    /// ``RaftError/Code/uncommittedLimitExceeded`` under backpressure,
    /// ``RaftError/Code/proposalDropped`` if a leader change lost it, ``RaftError/Code/timeout``
    /// after ``RaftNodeConfiguration/proposalTimeoutTicks``, ``RaftError/Code/stopped`` when the
    /// node stops, and `CancellationError` if the task is cancelled (the command may still be
    /// committed).
    public func propose(_ command: [UInt8]) async throws -> SM.Result {
        try Task.checkCancellation()
        return try await withProposal { (token, ticket) in
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<SM.Result, any Error>) in
                post(Proposal(commands: [command], token: token, reply: .one(c)), ticket: ticket)
            }
        }
    }

    /// Proposes several commands as one batch: they are appended together, in order, in one
    /// append (and one disk sync) with whatever else the node is proposing at the moment.
    /// Returns one result per command, in order, once all are committed and applied.
    ///
    /// Throws as ``propose(_:)`` does, and ``RaftError/Code/invalidArgument`` for an empty
    /// batch. On an error the outcome of each command is unknown: some may have been committed
    /// (a leader change can lose the rest; a timeout or cancellation stops the wait only).
    public func propose(batch commands: [[UInt8]]) async throws -> [SM.Result] {
        try Task.checkCancellation()
        guard !commands.isEmpty else {
            throw RaftError(.invalidArgument, "node \(id): a batch proposal needs at least one command")
        }
        return try await withProposal { (token, ticket) in
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[SM.Result], any Error>) in
                post(Proposal(commands: commands, token: token, reply: .batch(c)), ticket: ticket)
            }
        }
    }

    /// Runs `body` with a new proposal token, posting a cancellation for it if the task is
    /// cancelled once the proposal is posted.
    func withProposal<R>(_ body: (UInt64, ProposalTicket) async throws -> R) async throws -> R {
        try await withTicket(cancel: { .cancel($0) }, body)
    }

    /// Runs `body` with a new request token, posting `cancel(token)` if the task is cancelled
    /// once `body` marked the request posted on its ticket.
    func withTicket<R>(cancel: @escaping @Sendable (UInt64) -> Event, _ body: (UInt64, ProposalTicket) async throws -> R) async throws -> R {
        let token = nextProposal.add(1, ordering: .relaxed).newValue
        let ticket = ProposalTicket()
        return try await withTaskCancellationHandler {
            try await body(token, ticket)
        } onCancel: { [inbox] in
            ticket.state.withLock { s in
                s.cancelled = true
                // Posted under the ticket's lock, so it cannot overtake its request.
                if s.posted { inbox.post(cancel(token)) }
            }
        }
    }

    /// Posts a proposal unless its task was cancelled first (then it is answered at once).
    func post(_ p: Proposal, ticket: ProposalTicket) {
        let accepted = ticket.state.withLock { s -> Bool? in
            if s.cancelled { return nil }
            s.posted = true
            return inbox.post(.propose(p))
        }
        switch accepted {
        case nil: p.reply.fail(CancellationError())
        case false?: p.reply.fail(nodeStoppedError(id))
        case true?: break
        }
    }

    /// The node's current state.
    public func status() async throws -> NodeStatus {
        let s: NodeStatus? = await withCheckedContinuation { (c: CheckedContinuation<NodeStatus?, Never>) in
            if !inbox.post(.status(c)) { c.resume(returning: nil) }
        }
        guard let s else { throw nodeStoppedError(id) }
        return s
    }

    /// Closes the inbox and fails every queued request with `error`.
    func failQueued(with error: any Error) { fail(inbox.close(), with: error) }

    /// Answers requests that will never be handled.
    func fail(_ events: [Event], with error: any Error) {
        for e in events {
            switch e {
            case .propose(let p): p.reply.fail(error)
            case .campaign(let c): c.resume(throwing: error)
            case .status(let c): c.resume(returning: nil)
            case .snapshotNow(let c): c.resume(throwing: error)
            case .snapshotSaved(let output, _): output.value.abort()
            case .read(let r): r.fail(error)
            case .membership(let m): m.reply.resume(throwing: error)
            default: break
            }
        }
    }

    /// Starts an election now (a pre-vote first when configured).
    ///
    /// - Returns: whether an election started: `false` on a leader, on a node that is not a
    ///   voter, and on one installing a snapshot; with lease reads on
    ///   (``RaftConfiguration/readLease``), also on a node that heard from a leader within the
    ///   election timeout or started less than one ago (see ``RaftCore/campaign()``).
    /// - Throws: ``RaftError/Code/stopped`` if the node is not running, or a storage failure if
    ///   the election could not start because of it (the node then stops with that error).
    @discardableResult
    public func campaign() async throws -> Bool {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Bool, any Error>) in
            if !inbox.post(.campaign(c)) { c.resume(throwing: nodeStoppedError(id)) }
        }
    }

    /// Hands a message from a peer to the node (called by the transport).
    public func receive(_ message: Message) { inbox.post(.message(message)) }


    /// Stops the node: in-flight proposals fail with ``RaftError/Code/stopped``, the state
    /// machine is synced (``StateMachine/sync()``), the storage closed, and ``run()`` returns (or
    /// throws the sync's failure).
    public func stop() { inbox.post(.stop) }

}

func nodeStoppedError(_ id: NodeID) -> RaftError { RaftError(.stopped, "node \(id) is stopped") }

/// Posts a tick every `interval` of `clock`, on a fixed schedule (no drift).
func tickLoop<C: Clock, E: Sendable>(clock: C, every interval: Duration, into inbox: Inbox<E>, tick: E) async where C.Duration == Duration {
    var deadline = clock.now.advanced(by: interval)
    while !Task.isCancelled {
        do { try await clock.sleep(until: deadline, tolerance: nil) } catch { return }
        if !inbox.post(tick) { return }
        deadline = deadline.advanced(by: interval)
    }
}

/// What a running node reports about itself.
public struct NodeStatus: Sendable, Hashable {
    /// The core's view: role, term, leader, commit, per-follower progress on a leader.
    public var raft: RaftStatus
    /// The highest index the state machine holds.
    public var applied: LogIndex
    /// The index of the latest snapshot.
    public var snapshotIndex: LogIndex
    /// Entries waiting for their proposer's answer (a batch proposal counts once per command).
    public var pendingProposals: Int
    /// The snapshot the state machine is restoring from, off the run loop, if any. Until it is
    /// done, `applied` stays behind the snapshot and committed entries wait.
    public var restoringSnapshot: LogIndex?
    /// What opening the storage found and repaired before this node started
    /// (``WritableLogStorage/recoveryReport``); `nil` for a storage that reports nothing.
    public var storageRecovery: StorageRecoveryReport?
}
