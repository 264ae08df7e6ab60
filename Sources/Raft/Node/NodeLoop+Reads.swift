// Reads: asking the core for a read index, retrying while there is no leader or an answer was
// lost, and running queries once the state machine has applied far enough.

/// The run loop's reads, by token (confined to the loop).
struct PendingReads<SM: StateMachine> {
    enum Stage {
        /// Not accepted by the core yet: no leader known (an election), or retried.
        case waitingForLeader
        /// Asked at tick `tick` while `leader` led; an answer is due.
        case asked(tick: Int, leader: NodeID)
        /// Confirmed at this read index: served once the state machine has applied it.
        case confirmed(LogIndex)
    }

    struct Read {
        var request: RaftNode<SM>.ReadRequest
        var deadline: Int
        var stage: Stage
    }

    var byToken: [UInt64: Read] = [:]
    /// Tokens of confirmed reads not served yet.
    var confirmed: Set<UInt64> = []
    /// Drawn when the loop starts: every context this run sends begins with it, so an answer a
    /// leader sent to an earlier run of this node (tokens count from 1 again) never matches a
    /// read of this one.
    let nonce = UInt64.random(in: 1...UInt64.max)

    var isEmpty: Bool { byToken.isEmpty }

    /// The context a read's token travels as in the core and on the wire: the run's nonce,
    /// then the token, both big-endian.
    func context(_ token: UInt64) -> [UInt8] {
        var bytes = withUnsafeBytes(of: nonce.bigEndian) { Array($0) }
        withUnsafeBytes(of: token.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// The token of a context this run made, or `nil`.
    func token(_ context: [UInt8]) -> UInt64? {
        guard context.count == 16 else { return nil }
        let prefix = context[..<8].reduce(0) { $0 << 8 | UInt64($1) }
        guard prefix == nonce else { return nil }
        return context[8...].reduce(0) { $0 << 8 | UInt64($1) }
    }
}

extension NodeLoop {
    /// Ticks between asking again for a read index that got no answer (the request or its
    /// answer may be lost): two heartbeat intervals, so a lost message costs little.
    var readRetryTicks: Int { max(2, 2 * node.configuration.raft.heartbeatTicks) }

    /// Whether reads were confirmed here recently (within two ticks): then every write goes to
    /// the I/O thread, so the loop can take the steps of read rounds meanwhile
    /// (``takeDuringPersist(_:)``). Otherwise a write with nothing to apply meanwhile is made
    /// inline, which saves two thread hops.
    var readsActive: Bool { ticks - readActivityTick <= 2 }

    /// Records that `m` belongs to a read round (a heartbeat that confirms reads or a lease,
    /// its answer, a read-index request or its answer).
    func noteReadActivity(_ m: Message) {
        switch m.kind {
        case .heartbeat(let h) where h.round != 0: readActivityTick = ticks
        case .heartbeatResponse(let r) where r.round != 0: readActivityTick = ticks
        case .readIndex, .readIndexResponse: readActivityTick = ticks
        default: break
        }
    }

    func handleRead(_ r: RaftNode<SM>.ReadRequest) throws(RaftError) {
        if r.consistency != .stale { readActivityTick = ticks }
        if r.consistency == .stale {
            // Whatever is applied, but never beside a restore, which owns the state machine.
            reads.byToken[r.token] = PendingReads.Read(
                request: r, deadline: ticks + node.configuration.readTimeoutTicks, stage: .confirmed(.zero))
            reads.confirmed.insert(r.token)
            serveReads()
            return
        }
        if r.consistency == .lease && node.configuration.raft.readLease == nil {
            r.fail(RaftError(.invalidArgument, "node \(node.id): lease reads are not enabled: set RaftConfiguration.readLease (it requires checkQuorum)"))
            return
        }
        reads.byToken[r.token] = PendingReads.Read(
            request: r, deadline: ticks + node.configuration.readTimeoutTicks, stage: .waitingForLeader)
        try ask(r.token)
    }

    /// Serves `r` at once if it needs neither the core's help nor the storage, while another
    /// thread persists a batch: a stale read, or a lease read on a leader whose lease holds and
    /// whose state machine has applied the commit index (the query sees every write committed
    /// so far). Returns whether it did.
    func serveDuringPersist(_ r: RaftNode<SM>.ReadRequest) -> Bool {
        guard snapshotIO.restoring.isEmpty else { return false }
        switch r.consistency {
        case .stale:
            r.serve(stateMachine)
            return true
        case .lease:
            guard node.configuration.raft.readLease != nil, !ticksAreLate, let index = core.leaseReadIndex, applied.applied >= index else {
                return false
            }
            r.serve(stateMachine)
            return true
        case .linearizable:
            return false
        }
    }

    /// Takes `e` while another thread persists a batch, if that needs no storage: a read served
    /// at once (``serveDuringPersist(_:)``) or registered with the core, or a message of a read
    /// round (``RaftCore/stepWithoutStorage(_:)``). Returns whether `e` is done with; if not,
    /// it waits for the loop's next turn (a heartbeat answer too, whose read round was counted
    /// here: the rest of it reads the log).
    func takeDuringPersist(_ e: Event) -> Bool {
        let taken = takeWithoutStorage(e)
        if taken { metrics.stepsDuringPersist.increment() }
        return taken
    }

    func takeWithoutStorage(_ e: Event) -> Bool {
        // Once this loop's ticks are late (the write has lasted past the tick the lease allows
        // for), nothing more is taken until it ends: the core's tick count, and so its lease,
        // stands still meanwhile, and a leader whose disk hangs must not keep itself in office
        // by answering read rounds while it cannot write (its followers elect another).
        guard !ticksAreLate else { return false }
        switch e {
        case .read(let r):
            if r.consistency != .stale { readActivityTick = ticks }
            if serveDuringPersist(r) { return true }
            // A stale read not served is waiting for a restore; a lease read without a lease
            // configured is refused on the loop's next turn (the core takes neither).
            guard r.consistency != .stale, core.readIndexWithoutStorage(context: reads.context(r.token), confirmation: confirmation(of: r)) else {
                return false
            }
            reads.byToken[r.token] = PendingReads.Read(
                request: r, deadline: ticks + node.configuration.readTimeoutTicks, stage: .asked(tick: ticks, leader: core.leader))
            return true
        case .message(let m):
            noteReadActivity(m)
            return core.stepWithoutStorage(m)
        default:
            return false
        }
    }

    /// Sends what the core produced in steps taken while a batch is persisted, and serves the
    /// reads it confirmed whose index the state machine has applied.
    func releaseInterimOutput() {
        let out = core.takeInterimOutput()
        guard !out.isEmpty else { return }
        node.transport.send(out.messages)
        confirmReads(out.readStates)
        recordReadRounds()
    }

    /// Adds the read rounds the core started since the last call to the metrics.
    func recordReadRounds() {
        let started = core.readOnly.roundsStarted
        if started > readRoundsRecorded {
            metrics.readRounds.increment(by: Int64(clamping: started - readRoundsRecorded))
            readRoundsRecorded = started
        }
    }

    /// How the core is to confirm `r`: a lease read by the lease while this loop's ticks are on
    /// time, everything else by a heartbeat round.
    func confirmation(of r: RaftNode<SM>.ReadRequest) -> ReadConfirmation {
        // A lease counted in ticks holds only while ticks come on time: if this node's ticks are
        // late (its process was paused, its loop stalled), its count of the lease is behind the
        // real time, so confirm with a round instead.
        r.consistency == .lease && !ticksAreLate ? .lease : .quorum
    }

    /// Asks the core for the read index of `token`'s read; without a leader it waits for one.
    func ask(_ token: UInt64) throws(RaftError) {
        guard let read = reads.byToken[token] else { return }
        let confirmation = confirmation(of: read.request)
        do {
            try core.readIndex(context: reads.context(token), confirmation: confirmation)
            reads.byToken[token]?.stage = .asked(tick: ticks, leader: core.leader)
        } catch {
            if core.storageFailure != nil { throw error }
            // No leader to ask (an election): retried on the next tick and on a leader change.
            reads.byToken[token]?.stage = .waitingForLeader
        }
    }

    /// Whether this loop's count of ticks is behind its clock by more than the one tick
    /// ``ReadLease/ticks(electionTicks:)`` allows for. The ticker keeps a fixed schedule from
    /// `tickOrigin` (after a pause it posts the ticks it missed, one by one), so the count is
    /// compared with the schedule, not with the time of the last tick: right after a pause the
    /// first catch-up tick is recent while the count is still behind by the whole pause.
    var ticksAreLate: Bool {
        node.elapsed() - tickOrigin >= node.configuration.tickInterval * (ticks + 2)
    }

    /// Lets the core answer on its lease (its own reads and its followers') only while this
    /// loop's ticks are on time. Called before each batch of events.
    func guardLease() {
        guard node.configuration.raft.readLease != nil else { return }
        core.allowLeaseReads(!ticksAreLate)
    }

    /// Records the read indexes the core confirmed, and serves what the state machine holds.
    func confirmReads(_ states: [ReadState]) {
        guard !states.isEmpty else { return }
        metrics.readsConfirmed.increment(by: Int64(states.count))
        for s in states {
            guard let token = reads.token(s.context), let read = reads.byToken[token] else { continue }
            // A retried read may be answered twice: the first answer stands.
            if case .confirmed = read.stage { continue }
            reads.byToken[token]?.stage = .confirmed(s.index)
            reads.confirmed.insert(token)
        }
        serveReads()
    }

    /// Runs the queries of confirmed reads whose index the state machine has applied.
    func serveReads() {
        guard !reads.confirmed.isEmpty, snapshotIO.restoring.isEmpty else { return }
        let applied = applied.applied
        for token in reads.confirmed {
            guard let read = reads.byToken[token], case .confirmed(let index) = read.stage, index <= applied else { continue }
            reads.confirmed.remove(token)
            reads.byToken[token] = nil
            read.request.serve(stateMachine)
        }
    }

    /// On a tick: fails reads past their deadline, and asks again for those without an answer.
    func tickReads() throws(RaftError) {
        guard !reads.isEmpty else { return }
        for (token, read) in reads.byToken {
            if read.deadline <= ticks {
                reads.byToken[token] = nil
                reads.confirmed.remove(token)
                read.request.fail(readTimeout())
                continue
            }
            switch read.stage {
            case .waitingForLeader:
                try ask(token)
            case .asked(let tick, let leader):
                // A leader keeps its own requests until its term ends (then the leader change
                // asks again): asking it again would only queue duplicates.
                if leader == node.id && core.leader == node.id { break }
                if leader != core.leader || ticks - tick >= readRetryTicks { try ask(token) }
            case .confirmed:
                break
            }
        }
    }

    /// After a leader change: a request the old leader held is lost with its term (a leader
    /// drops its pending reads when it steps down), so ask the new one at once.
    func retryReadsAfterLeaderChange() throws(RaftError) {
        guard !reads.isEmpty else { return }
        for (token, read) in reads.byToken {
            switch read.stage {
            case .waitingForLeader: try ask(token)
            case .asked(_, let leader) where leader != core.leader: try ask(token)
            default: break
            }
        }
    }

    func readTimeout() -> RaftError {
        let leader = core.leader
        var e = RaftError(
            .timeout,
            "node \(node.id): no read index was confirmed and applied within \(node.configuration.readTimeoutTicks) ticks"
                + (leader.isNone ? " (no leader known)" : ""),
            leaderHint: leader.isNone ? nil : leader)
        if !leader.isNone { e.leaderAddress = node.configuration.clientAddresses[leader] }
        return e
    }

    /// Fails every pending read (the node stops).
    func failReads(_ error: any Error) {
        for read in reads.byToken.values { read.request.fail(error) }
        reads = PendingReads()
    }
}
