/// Read-index requests a leader is confirming with rounds of heartbeats (thesis §6.4), and the
/// lease that lets it answer some without a round (thesis §6.4.1).
///
/// Each heartbeat round that confirms reads has a number, increasing within the term; a request
/// records the round sent after it arrived. A follower's answer to round `r` shows it still
/// followed this leader after every request of round `r` or less was registered; a quorum of
/// such answers (the leader counting itself) confirms them. Rounds, not the callers' contexts,
/// are matched, so a context reused for a later read can never be confirmed by answers to an
/// earlier round (which would let a deposed leader serve a stale read).
///
/// Invariant: requests are in arrival order, so their rounds never decrease; confirming one
/// confirms every earlier one. A request's round is sent after it is registered: it is the
/// round queued when the request arrived, or a later one (one past the last round sent while
/// ``RaftConfiguration/maxReadRoundsInFlight`` rounds are out), never an earlier one.
struct ReadOnlyQueue {
    struct Request {
        var context: [UInt8]
        /// Who asked: this node (answered in ``Ready/readStates``) or a follower (answered with a
        /// ``Message/Kind/readIndexResponse(_:)``).
        var from: NodeID
        var index: LogIndex
        var round: UInt64
    }

    /// A request that arrived before the leader committed an entry of its term.
    struct Waiting {
        var context: [UInt8]
        var from: NodeID
        var confirmation: ReadConfirmation
    }

    var requests: [Request] = []
    var awaitingCommit: [Waiting] = []
    /// The last round sent in this term.
    var round: UInt64 = 0
    /// The highest round each follower answered in this term.
    var answered: [NodeID: UInt64] = [:]
    /// Whether the heartbeats of `round` are still queued, not yet handed out in a ``Ready``: a
    /// read registered now may share that round (its heartbeats leave after it), so reads that
    /// arrive together cost one round (batching).
    var roundUnsent = false

    // Lease bookkeeping, kept only when lease reads are enabled.

    /// Ticks this leader counted in its term.
    var ticks = 0
    /// The tick each recent round was sent at, in round order; rounds older than a lease are
    /// dropped (they can confirm no lease any more).
    var sentAt: [(round: UInt64, tick: Int)] = []
    /// For each follower, the tick at which the latest round it answered was sent: the follower
    /// refuses votes for an election timeout after it received that round.
    var leaseStart: [NodeID: Int] = [:]

    /// Follower: requests sent to the leader and not answered yet, by the context they went
    /// out with (the caller's context and a sequence number of this core), with the caller's
    /// context and their sequence number. An answer for any other context is dropped: a
    /// duplicated or late answer to an earlier request, even one with the same caller context,
    /// must not confirm a later one.
    var forwarded: [[UInt8]: (context: [UInt8], sequence: UInt64)] = [:]
    var forwardedCount: UInt64 = 0
    /// Requests kept outstanding at most; past it the oldest half is forgotten (their answers are
    /// then dropped, and their callers retry).
    static let maxForwarded = 4_096

    /// Records a request to the leader; returns the context it goes out with.
    mutating func forward(_ context: [UInt8]) -> [UInt8] {
        forwardedCount += 1
        var wire = context
        withUnsafeBytes(of: forwardedCount.bigEndian) { wire.append(contentsOf: $0) }
        forwarded[wire] = (context, forwardedCount)
        if forwarded.count > Self.maxForwarded {
            let cut = forwardedCount - UInt64(Self.maxForwarded / 2)
            forwarded = forwarded.filter { $0.value.sequence > cut }
        }
        return wire
    }

    /// Rounds started by this core in every term (a count for metrics; never reset).
    var roundsStarted: UInt64 = 0

    /// Rounds sent since the oldest request not yet confirmed was registered (counting the
    /// round it waits for, if sent): the rounds still out for the requests held.
    var roundsInFlight: Int {
        guard let first = requests.first, first.round <= round else { return 0 }
        return Int(round - first.round) + 1
    }

    /// Numbers a new round, whose heartbeats the caller queues.
    mutating func nextRound(recordingSendTick: Bool) -> UInt64 {
        round += 1
        roundsStarted += 1
        roundUnsent = true
        if recordingSendTick { sentAt.append((round, ticks)) }
        return round
    }

    /// The tick `round` was sent at, if it is still recent.
    func sendTick(of round: UInt64) -> Int? {
        var lo = 0
        var hi = sentAt.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sentAt[mid].round < round { lo = mid + 1 } else { hi = mid }
        }
        return lo < sentAt.count && sentAt[lo].round == round ? sentAt[lo].tick : nil
    }

    /// Forgets rounds sent more than `leaseTicks` ago.
    mutating func pruneRounds(leaseTicks: Int) {
        var drop = 0
        while drop < sentAt.count && ticks - sentAt[drop].tick > leaseTicks { drop += 1 }
        if drop > 0 { sentAt.removeFirst(drop) }
    }

    /// Forgets everything (a new term): pending requests are dropped unanswered.
    mutating func removeAll() {
        requests.removeAll()
        awaitingCommit.removeAll()
        round = 0
        roundUnsent = false
        answered.removeAll()
        ticks = 0
        sentAt.removeAll()
        leaseStart.removeAll()
        forwarded.removeAll()
    }
}

extension RaftCore {
    /// Asks for a linearizable read point (thesis §6.4), on the leader or on a follower. Once
    /// the leader confirmed it still leads, ``Ready/readStates`` carries a ``ReadState`` with
    /// `context`; a read served after applying up to its index reflects every write committed
    /// before this call.
    ///
    /// On the leader, confirmation waits until an entry of its term is committed (until then
    /// its commit index may be behind the cluster's) and then takes one heartbeat round
    /// answered by a quorum, shared by every request registered before the round left; with
    /// ``ReadConfirmation/lease`` and a lease that holds, no round at all. A follower asks the
    /// leader it knows (a ``Message/Kind/readIndex(_:)`` message) and gets the leader's index back;
    /// its state machine must then catch up to that index before the read is served.
    ///
    /// - Parameters:
    ///   - context: a non-empty value identifying the request, echoed back in its
    ///     ``ReadState``. On the leader safety does not depend on it being unique (heartbeat
    ///     rounds are matched, not contexts). On a follower the request goes out with the context
    ///     and a sequence number of this core, and the core accepts an answer only for a request
    ///     it has outstanding, once: reusing a context is safe while the core runs. It is not
    ///     across restarts (a new core counts from 1 again, and the network may still deliver
    ///     answers to the old one): use contexts a restarted node never used before
    ///     (``RaftNode`` starts each from a random value drawn at start).
    ///   - confirmation: ``ReadConfirmation/lease`` requires ``RaftConfiguration/readLease``.
    /// - Throws: ``storageFailure`` once the core stopped (or a new storage failure, which stops
    ///   it); ``RaftError/Code/notLeader`` on a node that knows no leader to ask (with the hint
    ///   `nil`); ``RaftError/Code/invalidArgument`` for an empty context, or a lease read
    ///   without a configured lease.
    ///
    /// Nothing is answered when the leader loses its leadership or the request or its answer
    /// is lost: callers time requests out and retry (a retry is always safe: every answer a
    /// leader sends was confirmed after the request reached it).
    public mutating func readIndex(context: [UInt8], confirmation: ReadConfirmation = .quorum) throws(RaftError) {
        if let storageFailure { throw storageFailure }
        guard !context.isEmpty else {
            throw RaftError(.invalidArgument, "a read-index context must not be empty")
        }
        if confirmation == .lease && config.readLease == nil {
            throw RaftError(.invalidArgument, "lease reads are not enabled on node \(id): set RaftConfiguration.readLease (it requires checkQuorum)")
        }
        switch role {
        case .leader:
            try guarded { (c) throws(RaftError) in try c.handleRead(context: context, from: c.id, confirmation: confirmation) }
        case .follower where !leader.isNone:
            let wire = readOnly.forward(context)
            send(to: leader, .readIndex(ReadIndexRequest(context: wire, confirmation: confirmation)))
        case .follower, .preCandidate, .candidate:
            throw RaftError(.notLeader, "node \(id) knows no leader to ask for a read index (an election is under way); retry shortly")
        }
    }

    /// A request from this node or a follower, on the leader.
    mutating func handleRead(context: [UInt8], from: NodeID, confirmation: ReadConfirmation) throws(RaftError) {
        if try log.termOrZero(log.committed) != term {
            // The commit index is only known to be current once an entry of this term commits.
            readOnly.awaitingCommit.append(ReadOnlyQueue.Waiting(context: context, from: from, confirmation: confirmation))
            return
        }
        startRead(context: context, from: from, confirmation: confirmation)
    }

    mutating func startRead(context: [UInt8], from: NodeID, confirmation: ReadConfirmation) {
        if tracker.isSoleVoter(id) || (confirmation == .lease && leaseHolds) {
            answerRead(ReadState(index: log.committed, context: context), to: from)
            return
        }
        if readOnly.roundUnsent {
            readOnly.requests.append(ReadOnlyQueue.Request(context: context, from: from, index: log.committed, round: readOnly.round))
            return
        }
        if config.maxReadRoundsInFlight > 0 && readOnly.roundsInFlight >= config.maxReadRoundsInFlight {
            // The next round, not sent yet: it leaves once one of those out is answered
            // (``sendWaitingRound()``) or with the next heartbeat, both after this request.
            readOnly.requests.append(ReadOnlyQueue.Request(context: context, from: from, index: log.committed, round: readOnly.round + 1))
            return
        }
        let round = readOnly.nextRound(recordingSendTick: config.readLease != nil)
        readOnly.requests.append(ReadOnlyQueue.Request(context: context, from: from, index: log.committed, round: round))
        bcastHeartbeat(round: round)
    }

    /// Sends the round that requests are waiting for (``RaftConfiguration/maxReadRoundsInFlight``)
    /// once fewer rounds than the limit are out.
    mutating func sendWaitingRound() {
        guard let last = readOnly.requests.last, last.round > readOnly.round, readOnly.roundsInFlight < config.maxReadRoundsInFlight else {
            return
        }
        let round = readOnly.nextRound(recordingSendTick: config.readLease != nil)
        bcastHeartbeat(round: round)
    }

    mutating func answerRead(_ state: ReadState, to requester: NodeID) {
        if requester == id {
            readStates.append(state)
        } else {
            send(to: requester, .readIndexResponse(ReadIndexResponse(context: state.context, index: state.index)))
        }
    }

    mutating func releaseReadsAwaitingCommit() throws(RaftError) {
        guard !readOnly.awaitingCommit.isEmpty, try log.termOrZero(log.committed) == term else { return }
        let pending = readOnly.awaitingCommit
        readOnly.awaitingCommit.removeAll()
        for w in pending { startRead(context: w.context, from: w.from, confirmation: w.confirmation) }
    }

    /// A follower answered heartbeat round `round`: extend the lease, and release every request
    /// it completes a quorum for.
    mutating func confirmReads(round: UInt64, from peer: NodeID) {
        // A round this leader never sent is not from a correct peer.
        guard round <= readOnly.round, round > readOnly.answered[peer, default: 0] else { return }
        readOnly.answered[peer] = round
        if config.readLease != nil, let sent = readOnly.sendTick(of: round), sent > readOnly.leaseStart[peer, default: Int.min] {
            readOnly.leaseStart[peer] = sent
        }
        var confirmed = 0
        for r in readOnly.requests {
            // The leader counts itself (when it votes: a leader being removed does not).
            let confirmedByQuorum = tracker.quorum.isSatisfied { s in
                let v = tracker.members[s]
                return v == id || readOnly.answered[v, default: 0] >= r.round
            }
            guard confirmedByQuorum else { break }
            answerRead(ReadState(index: r.index, context: r.context), to: r.from)
            confirmed += 1
        }
        if confirmed > 0 {
            readOnly.requests.removeFirst(confirmed)
            sendWaitingRound()
        }
    }

    /// Whether this leader's lease holds now: a quorum (counting itself) answered rounds sent
    /// within the last ``ReadLease/ticks(electionTicks:)`` ticks, so none of them will vote for
    /// another candidate before the lease ends (thesis §6.4.1).
    var leaseHolds: Bool {
        // A leader handing leadership over told (or is about to tell) the voters to ignore the
        // lease: it holds no more, and after a `timeoutNow` not for the rest of the term.
        guard role == .leader, leaseReadsAllowed, leadTransferee.isNone, !leaseForfeited, let lease = config.readLease else { return false }
        let length = lease.ticks(electionTicks: config.electionTicks)
        return tracker.quorum.isSatisfied { s in
            let v = tracker.members[s]
            if v == id { return true }
            guard let start = readOnly.leaseStart[v] else { return false }
            return readOnly.ticks - start <= length
        }
    }

    /// The index a lease read may be served at right now, without a round and without changing
    /// anything: this node's commit index when it leads, an entry of its term is committed and
    /// its lease holds (``RaftConfiguration/readLease``, ``allowLeaseReads(_:)``); `nil`
    /// otherwise (ask with ``readIndex(context:confirmation:)`` then). It reads no storage, so
    /// a shell may call it between ``ready()`` and ``advance(_:)`` while another thread persists
    /// the batch.
    public var leaseReadIndex: LogIndex? {
        guard storageFailure == nil, role == .leader, termCommitted, leaseHolds else { return nil }
        return log.committed
    }

    /// Lets a shell stop this leader from answering on its lease (for its own reads and its
    /// followers' alike) while its count of ticks may be behind the real time: ticks handled
    /// late, a process that was paused. Reads asking for a lease are then confirmed with a
    /// round. Allowed by default.
    public mutating func allowLeaseReads(_ allowed: Bool) { leaseReadsAllowed = allowed }

    /// A leader's tick for the lease: count it and forget rounds too old to confirm one.
    mutating func tickLease() {
        guard let lease = config.readLease else { return }
        readOnly.ticks += 1
        readOnly.pruneRounds(leaseTicks: lease.ticks(electionTicks: config.electionTicks))
    }

    /// Whether this node promised, by answering a leader, not to help elect anyone else yet:
    /// it heard from a leader within the election timeout, or (with lease reads on) it started
    /// less than an election timeout ago and cannot know whom it answered before it stopped.
    /// Such a node ignores vote requests of later terms (thesis §4.2.3) and, with lease reads
    /// on, refuses to campaign when asked to (a lease read relies on the promise).
    var inLeaderLease: Bool {
        guard config.checkQuorum else { return false }
        if !leader.isNone && electionElapsed < config.electionTicks { return true }
        return config.readLease != nil && ticksSinceStart < config.electionTicks
    }
}
