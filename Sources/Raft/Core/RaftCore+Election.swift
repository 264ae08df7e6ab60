extension RaftCore {
    // MARK: Role changes

    /// Starts an election now (a pre-vote first when configured), as if the election timeout
    /// had elapsed.
    ///
    /// - Returns: whether an election started: `false` on a leader, on a node that is not a
    ///   voter, and on one installing a snapshot (none of them may campaign); with lease reads
    ///   on (``RaftConfiguration/readLease``), also `false` on a node that heard from a leader
    ///   within the election timeout or started less than one ago: a leader may be serving
    ///   reads on a lease that relies on this node not helping anyone else win before then.
    /// - Throws: a storage failure (the request carries the last entry's term).
    @discardableResult
    public mutating func campaign() throws(RaftError) -> Bool {
        try guarded { (c) throws(RaftError) in
            guard c.role != .leader, c.promotable else { return false }
            if c.config.readLease != nil && c.inLeaderLease { return false }
            c.electionElapsed = 0
            try c.hup()
            return true
        }
    }

    mutating func hup() throws(RaftError) {
        guard role != .leader, promotable else { return }
        try startCampaign(preVote: config.preVote)
    }

    mutating func reset(term newTerm: Term) {
        if newTerm != term {
            term = newTerm
            vote = .none
        }
        leader = .none
        electionElapsed = 0
        heartbeatElapsed = 0
        randomizedElectionTimeout = config.electionTicks + Int(rng.next() % UInt64(config.electionTicks))
        tracker.resetVotes()
        let last = log.lastIndex()
        let stable = log.stableLastIndex
        for i in tracker.members.indices {
            var p = Progress(next: last + 1, maxInflight: config.maxInflightMessages, maxInflightBytes: config.maxInflightBytes)
            if tracker.members[i] == id { p.match = stable }
            tracker.progress[i] = p
        }
        abortLeadershipTransfer()
        leaseForfeited = false
        uncommittedBytes = 0
        termCommitted = false
        readOnly.removeAll()
        verifiedMatch = log.committed
    }

    mutating func becomeFollower(term: Term, leader newLeader: NodeID) {
        reset(term: term)
        role = .follower
        leader = newLeader
    }

    mutating func becomePreCandidate() {
        // A pre-candidate changes neither term nor vote (thesis §9.6).
        role = .preCandidate
        randomizedElectionTimeout = config.electionTicks + Int(rng.next() % UInt64(config.electionTicks))
        tracker.resetVotes()
        leader = .none
    }

    mutating func becomeCandidate() {
        reset(term: term.next)
        vote = id
        role = .candidate
    }

    mutating func becomeLeader() throws(RaftError) {
        reset(term: term)
        role = .leader
        leader = id
        if let me = tracker.slot(of: id) {
            tracker.progress[me].becomeReplicate()
            tracker.progress[me].recentActive = true
        }
        // §5.4.2 / §8: a new leader commits a no-op of its own term, which also commits every
        // earlier entry it holds. Not counted against the uncommitted limit.
        let noop = LogEntry(term: term, index: log.lastIndex() + 1, kind: .noop)
        log.append([noop])
        try bcastAppend()
    }

    mutating func startCampaign(preVote: Bool, transfer: Bool = false) throws(RaftError) {
        let voteTerm: Term
        if preVote {
            becomePreCandidate()
            voteTerm = term.next
        } else {
            becomeCandidate()
            voteTerm = term
        }
        tracker.recordVote(from: id, granted: true)
        if tracker.tally() == .won {
            // A single voter wins at once.
            if preVote { try startCampaign(preVote: false) } else { try becomeLeader() }
            return
        }
        let request = RequestVote(lastLogIndex: log.lastIndex(), lastLogTerm: try log.lastTerm(), leadershipTransfer: transfer)
        for peer in tracker.voters where peer != id {
            send(to: peer, term: voteTerm, preVote ? .preVote(request) : .requestVote(request))
        }
    }

    // MARK: Step

    /// Processes a message from a peer.
    ///
    /// Stale, duplicated and reordered messages are expected and handled; a message addressed
    /// to another node throws ``RaftError/Code/invalidConfiguration`` (a transport wiring error),
    /// and a malformed one throws ``RaftError/Code/invalidMessage`` without changing anything.
    /// A storage read that fails throws that error and stops the core (``storageFailure``): a
    /// caller tells the two apart by checking ``storageFailure``.
    public mutating func step(_ m: Message) throws(RaftError) {
        guard m.to == id else {
            throw RaftError(.invalidConfiguration, "message for node \(m.to) delivered to node \(id): check the transport's address book")
        }
        if let storageFailure { throw storageFailure }
        try validate(m)
        if case .forwardProposal(let p) = m.kind {
            try guarded { (c) throws(RaftError) in try c.handleForwardedProposal(p, from: m.from) }
            return
        }
        if m.term > term {
            switch m.kind {
            case .preVote(let rv), .requestVote(let rv):
                // Leader lease (thesis §4.2.3, §9.6): while we hear from a leader, ignore
                // candidates that would depose it, unless that leader asked for the election
                // (a leadership transfer, §3.10).
                if inLeaderLease && !rv.leadershipTransfer { return }
            default: break
            }
            switch m.kind {
            case .preVote:
                break  // a pre-vote never changes our term
            case .preVoteResponse(let r) where r.granted:
                break  // counted below against the term we would campaign in
            case .appendEntries, .heartbeat, .installSnapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: .none)
            }
        } else if m.term < term {
            switch m.kind {
            case .appendEntries, .heartbeat:
                // A stale leader (say, back from a partition). With PreVote or CheckQuorum our
                // term did not reach it through an election, so tell it to step down.
                if config.checkQuorum || config.preVote {
                    send(to: m.from, .appendEntriesResponse(AppendEntriesResponse(index: .zero)))
                }
            case .preVote:
                send(to: m.from, .preVoteResponse(RequestVoteResponse(granted: false)))
            default: break
            }
            return
        }

        switch m.kind {
        case .preVote(let rv), .requestVote(let rv):
            try guarded { (c) throws(RaftError) in try c.handleVoteRequest(m, rv) }
            return
        case .readIndexResponse(let r):
            // Confirmed by the leader of this term after our request reached it: serve it at
            // that index, whatever role this node plays by now. Only once, and only for a
            // request outstanding: a duplicate or a late answer to an earlier request would
            // confirm a later one at an index below writes committed before it was asked.
            guard let request = readOnly.forwarded.removeValue(forKey: r.context) else { return }
            readStates.append(ReadState(index: r.index, context: request.context))
            return
        default: break
        }

        try guarded { (c) throws(RaftError) in
            switch c.role {
            case .leader: try c.stepLeader(m)
            case .preCandidate, .candidate: try c.stepCandidate(m)
            case .follower: try c.stepFollower(m)
            }
        }
    }

    /// Refuses messages no correct peer sends, before they touch any state: no sender or this
    /// node as the sender, entries that do not follow `prevLogIndex` one by one, terms going
    /// backwards or past the sender's term, a snapshot with an invalid membership.
    func validate(_ m: Message) throws(RaftError) {
        func bad(_ why: String) -> RaftError {
            RaftError(.invalidMessage, "message from node \(m.from) in term \(m.term): \(why)")
        }
        // Terms and indexes stay far below the ranges where arithmetic on them could overflow;
        // no real cluster comes near 2^62 terms or entries.
        func check(_ values: UInt64...) throws(RaftError) {
            for v in values where v > Message.maxTermOrIndex { throw bad("term or index \(v) is out of range") }
        }
        // A message from nobody, or from this node to itself, comes from a broken transport or
        // a hostile peer: it could vote or lead in someone's name.
        if m.from.isNone { throw bad("the sender id is none") }
        if m.from == id { throw bad("the sender is the receiver itself") }
        try check(m.term.rawValue)
        switch m.kind {
        case .preVote(let r), .requestVote(let r):
            try check(r.lastLogIndex.rawValue, r.lastLogTerm.rawValue)
        case .appendEntriesResponse(let r):
            try check(r.index.rawValue, r.rejectHint.rawValue, r.rejectHintTerm.rawValue)
        case .heartbeat(let h):
            try check(h.commit.rawValue)
        case .readIndex(let r):
            if r.context.isEmpty { throw bad("a read-index request has an empty context") }
        case .readIndexResponse(let r):
            try check(r.index.rawValue)
            if r.context.isEmpty { throw bad("a read-index answer has an empty context") }
        default:
            break
        }
        switch m.kind {
        case .appendEntries(let a):
            try check(a.prevLogIndex.rawValue, a.prevLogTerm.rawValue, a.leaderCommit.rawValue)
            if a.prevLogTerm > m.term { throw bad("prevLogTerm \(a.prevLogTerm) is past the sender's term") }
            if a.prevLogIndex.rawValue > UInt64.max - UInt64(a.entries.count) - 1 { throw bad("indexes overflow") }
            var expected = a.prevLogIndex + 1
            var lastTerm = a.prevLogTerm
            for e in a.entries {
                if e.index != expected { throw bad("entry \(e.index) where \(expected) was expected") }
                if e.term < lastTerm || e.term > m.term { throw bad("entry \(e.index) has term \(e.term) out of order") }
                if e.kind == .membership {
                    do { _ = try Self.decodeMembership(e) } catch { throw bad(error.message) }
                }
                lastTerm = e.term
                expected = expected + 1
            }
        case .installSnapshot(let s):
            try check(s.metadata.index.rawValue, s.metadata.term.rawValue)
            if s.metadata.term > m.term { throw bad("snapshot term \(s.metadata.term) is past the sender's term") }
            do { try RaftConfiguration.validate(s.metadata.confState) } catch { throw bad("snapshot membership: \(error.message)") }
            if s.data == .inSenderStorage { throw bad("the snapshot's bytes were left in the sender's storage: its shell must stream them") }
        case .snapshotChunk, .snapshotChunkAck:
            throw bad("snapshot chunks are reassembled by the node runtime; the core takes whole snapshots")
        default:
            break
        }
    }

    mutating func handleVoteRequest(_ m: Message, _ rv: RequestVote) throws(RaftError) {
        let isPre: Bool
        if case .preVote = m.kind { isPre = true } else { isPre = false }
        // §5.2: one vote per term, first come first served; a pre-vote for a later term is
        // granted freely because it binds nothing.
        let canVote = vote == m.from || (vote.isNone && leader.isNone) || (isPre && m.term > term)
        // §5.4.1: only for a candidate whose log is at least as up to date as ours.
        if canVote, try log.isUpToDate(index: rv.lastLogIndex, term: rv.lastLogTerm) {
            let granted = RequestVoteResponse(granted: true)
            send(to: m.from, term: m.term, isPre ? .preVoteResponse(granted) : .requestVoteResponse(granted))
            if !isPre {
                electionElapsed = 0
                vote = m.from
            }
        } else {
            let refused = RequestVoteResponse(granted: false)
            send(to: m.from, isPre ? .preVoteResponse(refused) : .requestVoteResponse(refused))
        }
    }

    mutating func stepCandidate(_ m: Message) throws(RaftError) {
        switch m.kind {
        case .appendEntries(let ae):
            becomeFollower(term: m.term, leader: m.from)
            try handleAppendEntries(from: m.from, ae)
        case .heartbeat(let hb):
            becomeFollower(term: m.term, leader: m.from)
            handleHeartbeat(from: m.from, hb)
        case .installSnapshot(let s):
            becomeFollower(term: m.term, leader: m.from)
            try handleInstallSnapshot(from: m.from, s)
        case .timeoutNow:
            // A candidate of this term already campaigns; a stale order changes nothing.
            break
        case .preVoteResponse(let r):
            guard role == .preCandidate else { return }
            // A granted pre-vote answers with the term we asked about; anything else is stale.
            if r.granted && m.term != term.next { return }
            try tallyVote(from: m.from, granted: r.granted)
        case .requestVoteResponse(let r):
            guard role == .candidate else { return }
            try tallyVote(from: m.from, granted: r.granted)
        default:
            break
        }
    }

    mutating func tallyVote(from peer: NodeID, granted: Bool) throws(RaftError) {
        tracker.recordVote(from: peer, granted: granted)
        switch tracker.tally() {
        case .won:
            if role == .preCandidate { try startCampaign(preVote: false) } else { try becomeLeader() }
        case .lost:
            becomeFollower(term: term, leader: .none)
        case .pending:
            break
        }
    }

    mutating func stepFollower(_ m: Message) throws(RaftError) {
        switch m.kind {
        case .appendEntries(let ae):
            electionElapsed = 0
            leader = m.from
            try handleAppendEntries(from: m.from, ae)
        case .heartbeat(let hb):
            electionElapsed = 0
            leader = m.from
            handleHeartbeat(from: m.from, hb)
        case .installSnapshot(let s):
            electionElapsed = 0
            leader = m.from
            try handleInstallSnapshot(from: m.from, s)
        case .timeoutNow:
            try handleTimeoutNow(from: m.from)
        default:
            break
        }
    }
}
