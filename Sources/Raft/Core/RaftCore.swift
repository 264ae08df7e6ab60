/// The Raft protocol as a deterministic value type: no I/O, no clock, no tasks.
///
/// Drive it with ``tick()``, ``step(_:)``, ``propose(_:)``, ``campaign()`` and
/// ``readIndex(context:confirmation:)``; collect what it wants done with ``ready()``; report it done with
/// ``advance(_:)``. Given the same storage contents, configuration and inputs it produces the
/// same outputs, which is what makes simulation testing possible.
///
/// A core is confined to one thread or task; it is deliberately not `Sendable`.
public struct RaftCore {
    /// The role a node plays in the current term (§5.1, thesis §9.6 for pre-candidates).
    public enum Role: Sendable, Hashable, CustomStringConvertible {
        /// Follows a leader (or waits for one): answers appends and votes, campaigns when it
        /// hears from no leader for an election timeout.
        case follower
        /// Asks the voters whether it could win (PreVote, thesis §9.6) before raising its term.
        case preCandidate
        /// Campaigns in a new term for the voters' votes (§5.2).
        case candidate
        /// Leads the term: replicates the log, commits, answers reads (§5.3).
        case leader
        /// The role's name in lower case, as logs and status pages show it.
        public var description: String {
            switch self {
            case .follower: "follower"
            case .preCandidate: "pre-candidate"
            case .candidate: "candidate"
            case .leader: "leader"
            }
        }
    }

    /// This node's id.
    public let id: NodeID
    let config: RaftConfiguration
    /// Latest term seen. Invariant: never decreases.
    public internal(set) var term: Term
    /// Vote cast in `term`. Invariant: at most one vote per term, durable before it is announced.
    public internal(set) var vote: NodeID
    /// Current role.
    public internal(set) var role: Role = .follower
    /// The leader of `term` if known.
    public internal(set) var leader: NodeID = .none

    var log: RaftLog
    var tracker: ProgressTracker
    /// The memberships in the log above the snapshot; the latest is `tracker.conf`.
    var memberships: MembershipHistory
    /// Leader: the target of a pending leadership transfer (``transferLeadership(to:)``).
    var leadTransferee: NodeID = .none
    /// Leader: ticks since the pending transfer started.
    var transferElapsed = 0
    /// Leader: a `timeoutNow` was sent in this term. Its target may campaign whenever it arrives
    /// (however late, even after the transfer was aborted), and voters answer it despite their
    /// lease, so this leader answers no lease read again in this term.
    var leaseForfeited = false
    var rng: SeededGenerator
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    /// Ticks since this core was created, counted up to an election timeout (the lease rule
    /// of ``inLeaderLease`` for a node that just restarted).
    var ticksSinceStart = 0
    /// Follower: the last index proven to match the current leader's log in this term. A
    /// heartbeat's commit index is applied only up to here, so a leader with a stale picture
    /// of this log (a wiped disk, say) can never make it commit what it does not hold.
    var verifiedMatch: LogIndex = .zero
    /// Leader: payload bytes appended but not yet committed (backpressure).
    var uncommittedBytes = 0
    var readOnly = ReadOnlyQueue()
    /// Whether the shell lets this leader answer on its lease (``allowLeaseReads(_:)``).
    var leaseReadsAllowed = true
    /// Leader: whether an entry of this term is committed (so the commit index is current).
    var termCommitted = false

    var outboxImmediate: [Message] = []
    /// Messages of steps taken while a batch is persisted (RaftCore+Interim), handed out by
    /// ``takeInterimOutput()`` or else with the next ``ready()``'s ``Ready/messages``.
    var interimOutbox: [Message] = []
    /// Whether ``send(_:)`` routes to `interimOutbox` (only inside ``interim(_:)``).
    var interimSending = false
    var outboxAfterPersist: [Message] = []
    var readStates: [ReadState] = []
    var lastSoftState: SoftState
    var lastHardState: HardState
    /// The hard state the shell confirmed durable through `advance`.
    var persistedHardState: HardState

    /// Creates a core from what `storage` holds.
    ///
    /// - Parameters:
    ///   - configuration: validated here; a bad value throws ``RaftError/Code/invalidConfiguration``.
    ///   - storage: durable log, hard state and membership. A new cluster's storage holds the
    ///     initial voters (``MemoryLogStorage/init(voters:)``).
    ///   - applied: the index the state machine already holds (for state machines that are
    ///     themselves durable); committed entries at or below it are not handed out again. If
    ///     it is past the log's last index the state machine is ahead of the log and the core
    ///     refuses to start with an error naming both indexes.
    public init(configuration: RaftConfiguration, storage: any LogStorage, applied: LogIndex? = nil) throws(RaftError) {
        try configuration.validate()
        let (hardState, confState) = try storage.initialState()
        // An empty membership is a node waiting to be added: it never campaigns and learns the
        // membership from the leader that adds it.
        if !confState.isEmpty { try RaftConfiguration.validate(confState) }
        id = configuration.id
        config = configuration
        log = RaftLog(storage: storage, maxCommittedBytes: configuration.maxCommittedBytesPerReady)
        rng = SeededGenerator(seed: configuration.randomSeed ^ (configuration.id.rawValue &* 0x9E37_79B9_7F4A_7C15))
        let last = log.lastIndex()
        // Thesis §4.1: the membership in force is the latest in the log, so read the ones above
        // the snapshot (the storage's membership is the snapshot's).
        memberships = try Self.loadMemberships(storage, base: confState, at: storage.snapshotMetadata().index)
        tracker = ProgressTracker(
            conf: memberships.current, next: last + 1, maxInflight: configuration.maxInflightMessages,
            maxInflightBytes: configuration.maxInflightBytes)
        term = hardState.term
        vote = hardState.vote
        // The persisted commit index is only a hint: clamp it into the log we actually hold,
        // so storage that lost its tail restarts as a follower to be caught up, not a crash.
        log.commitTo(min(hardState.commit, last))
        if let applied, applied > log.applied {
            if applied > last {
                throw RaftError(
                    .storage,
                    "the state machine reports applied index \(applied) but the log ends at \(last): the state machine is ahead of the log; restore the log or rebuild the state machine")
            }
            // Entries the state machine applied were committed when it applied them.
            log.commitTo(applied)
            log.appliedTo(applied)
        }
        lastHardState = HardState(term: hardState.term, vote: hardState.vote, commit: log.committed)
        persistedHardState = hardState
        lastSoftState = SoftState(role: .follower, leader: .none)
        becomeFollower(term: term, leader: .none)
    }

    // MARK: Inspection

    /// Highest committed index.
    public var commitIndex: LogIndex { log.committed }
    /// Highest index reported applied through ``advance(_:)``.
    public var appliedIndex: LogIndex { log.applied }
    /// Last index in the log (durable or not).
    public var lastIndex: LogIndex { log.lastIndex() }
    /// First index still held.
    public var firstIndex: LogIndex { log.firstIndex() }
    /// Current voters (of both configurations while a joint change is in progress), sorted.
    public var voters: [NodeID] { tracker.voters }
    /// The current hard state (durable or not yet).
    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    /// Payload bytes a leader holds uncommitted.
    public var uncommittedBytesInFlight: Int { uncommittedBytes }

    /// The term of the entry at `index`, or `nil` if it is not held (compacted or past the
    /// end). Throws ``storageFailure`` once the core stopped, or the storage's error if reading it
    /// fails (an inspection does not stop the core; the next input that reads it will).
    public func term(at index: LogIndex) throws(RaftError) -> Term? {
        if let storageFailure { throw storageFailure }
        return try log.termIfHeld(index)
    }

    // MARK: Storage failures

    /// The storage error that stopped this core, if any.
    ///
    /// A read the log's indexes say must succeed (an entry or term the storage holds, the latest
    /// snapshot) that fails leaves the core halfway through a step, so from then on it refuses
    /// every input and ``ready()`` with this error: the shell stops the node and reopens the
    /// storage. A core never treats a failed read as "not held", which would hand out an empty
    /// batch forever or grant a vote on a wrong up-to-date check.
    public internal(set) var storageFailure: RaftError?

    /// Runs `body`, which may read storage; any error it throws is a storage failure and stops
    /// the core. Refusals (not leader, limits, malformed messages) are decided before, outside.
    mutating func guarded<T>(_ body: (inout RaftCore) throws(RaftError) -> T) throws(RaftError) -> T {
        if let storageFailure { throw storageFailure }
        do { return try body(&self) } catch {
            storageFailure = error
            throw error
        }
    }

    /// An operator's view of this node.
    public func status() -> RaftStatus {
        var members: [RaftStatus.Member] = []
        if role == .leader {
            for (i, id) in tracker.members.enumerated() {
                let p = tracker.progress[i]
                members.append(RaftStatus.Member(
                    id: id, role: tracker.conf.role(of: id) ?? .learner, match: p.match, next: p.next, state: p.state,
                    inflight: p.inflights.count))
            }
        }
        return RaftStatus(
            id: id, term: term, vote: vote, role: role, leader: leader, commit: log.committed, applied: log.applied,
            firstIndex: log.firstIndex(), lastIndex: log.lastIndex(), members: members, membership: tracker.conf,
            membershipIndex: memberships.currentIndex, leadershipTransferTarget: leadTransferee)
    }

    // MARK: Ready / advance

    /// Whether ``ready()`` has anything to hand out.
    /// A core stopped by a storage failure has one (``ready()`` throws the failure).
    public var hasReady: Bool {
        if storageFailure != nil { return true }
        if !outboxImmediate.isEmpty || !outboxAfterPersist.isEmpty || !readStates.isEmpty || !interimOutbox.isEmpty { return true }
        if log.unstable.snapshot != nil || !log.unstable.entries.isEmpty { return true }
        if log.hasNextCommittedEntries { return true }
        if hardState != lastHardState { return true }
        if SoftState(role: role, leader: leader) != lastSoftState { return true }
        return false
    }

    /// Collects everything to persist, send and apply. Hand the value back with
    /// ``advance(_:)`` once done; call this again only after that.
    ///
    /// Throws ``storageFailure`` when reading the committed entries fails, or failed before.
    public mutating func ready() throws(RaftError) -> Ready {
        let committed = try guarded { (c) throws(RaftError) in try c.log.nextCommittedEntries() }
        if let last = committed.last {
            log.applying = last.index
            if role == .leader { reduceUncommitted(committed) }
        }
        let hs = hardState
        let ss = SoftState(role: role, leader: leader)
        let rd = Ready(
            softState: ss != lastSoftState ? ss : nil,
            hardState: hs != lastHardState ? hs : nil,
            snapshot: log.unstable.snapshot,
            entries: log.unstable.entries,
            committedEntries: committed,
            messages: interimOutbox.isEmpty ? outboxImmediate : interimOutbox + outboxImmediate,
            messagesAfterPersist: outboxAfterPersist,
            readStates: readStates,
            mustSync: !log.unstable.entries.isEmpty || log.unstable.snapshot != nil || hs.term != lastHardState.term
                || hs.vote != lastHardState.vote)
        lastSoftState = ss
        lastHardState = hs
        // Heartbeats queued for a read round leave with this batch: a later read needs its own.
        readOnly.roundUnsent = false
        // Fresh arrays, not removeAll(keepingCapacity:): `rd` shares these buffers.
        outboxImmediate = []
        outboxAfterPersist = []
        interimOutbox = []
        readStates = []
        return rd
    }

    /// Reports that a ``Ready`` was carried out: persisted, sent and applied.
    ///
    /// Throws a storage failure: a leader whose own write commits entries sends the followers
    /// the next ones, read from storage.
    public mutating func advance(_ rd: Ready) throws(RaftError) {
        try guarded { (c) throws(RaftError) in try c.advanceUnguarded(rd) }
    }

    mutating func advanceUnguarded(_ rd: Ready) throws(RaftError) {
        if let hs = rd.hardState { persistedHardState = hs }
        if let s = rd.snapshot {
            log.unstable.stableSnapshot(at: s.metadata.index)
            log.appliedTo(s.metadata.index)
        }
        if let last = rd.entries.last {
            log.unstable.stableTo(last.index, term: last.term)
            if role == .leader, let me = tracker.slot(of: id) {
                // The leader counts itself only for entries on its own disk.
                if tracker.progress[me].maybeUpdate(log.stableLastIndex), try maybeCommit() {
                    try bcastAppend()
                }
            }
        }
        if let last = rd.committedEntries.last { log.appliedTo(last.index) }
    }

    // MARK: Sending

    /// Queues a message. A leader's appends, heartbeats and snapshots in a durable term go out
    /// at once, as do a follower's heartbeat answers and read-index requests; everything else
    /// waits until the batch that produced it is durable.
    mutating func send(_ m: Message) {
        if interimSending {
            interimOutbox.append(m)
            return
        }
        if role == .leader && term == persistedHardState.term {
            switch m.kind {
            case .appendEntries, .heartbeat, .installSnapshot, .readIndexResponse, .timeoutNow:
                outboxImmediate.append(m)
                return
            default: break
            }
        }
        // A follower's answer to a heartbeat and its read-index requests say only that it
        // follows this term's leader: once the term and vote are durable they wait for no
        // write (an answer held back for the follower's disk write would hold up the leader's
        // read round by as much).
        if role == .follower && termAndVoteDurable {
            switch m.kind {
            case .heartbeatResponse, .readIndex:
                outboxImmediate.append(m)
                return
            default: break
            }
        }
        outboxAfterPersist.append(m)
    }

    mutating func send(to: NodeID, term: Term? = nil, _ kind: Message.Kind) {
        send(Message(from: id, to: to, term: term ?? self.term, kind: kind))
    }

    // MARK: Ticks

    /// Advances logical time by one tick: followers and candidates count towards an election,
    /// leaders towards a heartbeat and the CheckQuorum test.
    ///
    /// Throws a storage failure (an election reads the last entry's term).
    public mutating func tick() throws(RaftError) {
        try guarded { (c) throws(RaftError) in
            if c.ticksSinceStart < c.config.electionTicks { c.ticksSinceStart += 1 }
            switch c.role {
            case .leader: try c.tickLeader()
            case .follower, .preCandidate, .candidate: try c.tickElection()
            }
        }
    }

    mutating func tickElection() throws(RaftError) {
        electionElapsed += 1
        if promotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            try hup()
        }
    }

    mutating func tickLeader() throws(RaftError) {
        heartbeatElapsed += 1
        electionElapsed += 1
        tickLease()
        tickTransfer()
        if electionElapsed >= config.electionTicks {
            electionElapsed = 0
            if config.checkQuorum && !tracker.quorumActiveAndReset(me: id) {
                // Thesis §6.2: a leader that cannot reach a quorum steps down, so clients go
                // elsewhere instead of waiting on a leader that can commit nothing.
                becomeFollower(term: term, leader: .none)
                return
            }
        }
        if heartbeatElapsed >= config.heartbeatTicks {
            heartbeatElapsed = 0
            // With reads pending, a new round: if the heartbeats of their own rounds were lost,
            // this one confirms them all. With lease reads on, every heartbeat is a round: the
            // answers keep the lease alive.
            let lease = config.readLease != nil
            bcastHeartbeat(round: readOnly.requests.isEmpty && !lease ? 0 : readOnly.nextRound(recordingSendTick: lease))
            // A pending transfer's `timeoutNow` may have been lost: say it again.
            try continueLeadershipTransfer()
        }
    }

    /// Whether this node may stand for election: it installs no snapshot, and it votes in the
    /// membership in force, or voted in the one before while the change to it is not known to
    /// be committed. Thesis §4.2.2: a server that is not in its own latest configuration still
    /// starts elections until that configuration commits, as it may still be needed (a leader
    /// removed by the change steps down, CheckQuorum say, before it commits: the others, still
    /// joint, may need its vote, which it gives only to a log as long as its own). Once it knows
    /// the change committed it never campaigns again; a learner never does.
    var promotable: Bool {
        guard log.unstable.snapshot == nil else { return false }
        if tracker.isVoter(id) { return true }
        return memberships.currentIndex > log.committed && memberships.previous.isVoter(id)
    }

    // MARK: Shell reports

    /// Tells the leader a message to `peer` could not be delivered; it stops pipelining to it
    /// and probes instead.
    public mutating func reportUnreachable(_ peer: NodeID) {
        guard storageFailure == nil, role == .leader, let i = tracker.slot(of: peer) else { return }
        if tracker.progress[i].state == .replicate { tracker.progress[i].becomeProbe() }
    }

    /// Tells the leader whether a snapshot sent to `peer` was delivered. On failure the leader
    /// probes again (and sends a new snapshot if still needed); on success it waits for the
    /// follower's acknowledgement. A transport must report every snapshot it was given, whether
    /// it arrived or not: until it does, the leader sends that follower nothing else.
    public mutating func reportSnapshot(to peer: NodeID, failed: Bool) {
        guard storageFailure == nil, role == .leader, let i = tracker.slot(of: peer), tracker.progress[i].state == .snapshot else { return }
        if failed { tracker.progress[i].pendingSnapshot = .zero }
        tracker.progress[i].becomeProbe()
        // Wait for the follower's answer (or a heartbeat) before probing.
        tracker.progress[i].probeSent = true
    }
}
