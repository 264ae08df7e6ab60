extension RaftCore {
    // MARK: Proposals

    /// Proposes one command. See ``propose(commands:)``.
    @discardableResult
    public mutating func propose(_ command: [UInt8]) throws(RaftError) -> ProposalReceipt? {
        try propose(commands: [command])
    }

    /// Proposes commands to be appended in order, as one batch.
    ///
    /// - Returns: on the leader, where the entries went; on a follower that forwards proposals,
    ///   `nil` (the commands were sent to the leader and will be appended there if it is still
    ///   leader when they arrive).
    /// - Throws: ``storageFailure`` (or a new storage failure while replicating, which stops the
    ///   core); ``RaftError/Code/invalidArgument`` for an empty batch (nothing to append);
    ///   ``RaftError/Code/notLeader`` (with ``RaftError/leaderHint``) on a follower
    ///   that refuses proposals or knows no leader, and on candidates;
    ///   ``RaftError/Code/uncommittedLimitExceeded`` when the leader holds too many uncommitted
    ///   bytes; ``RaftError/Code/leadershipTransferInProgress`` (the hint names the target) while
    ///   the leader hands leadership over.
    @discardableResult
    public mutating func propose(commands: [[UInt8]]) throws(RaftError) -> ProposalReceipt? {
        if let storageFailure { throw storageFailure }
        guard !commands.isEmpty else {
            throw RaftError(.invalidArgument, "node \(id): a proposal needs at least one command")
        }
        switch role {
        case .leader:
            if !leadTransferee.isNone {
                throw RaftError(
                    .leadershipTransferInProgress, "node \(id) is handing leadership to \(leadTransferee); send proposals there",
                    leaderHint: leadTransferee)
            }
            if let refusal = uncommittedLimitRefusal(commands) { throw refusal }
            return try guarded { (c) throws(RaftError) in try c.appendProposals(commands) }
        case .follower:
            if leader.isNone {
                throw RaftError(.notLeader, "node \(id) is a follower and knows no leader in term \(term); retry later")
            }
            if config.refuseProposalsOnFollower {
                throw RaftError(.notLeader, "node \(id) is a follower; send proposals to the leader", leaderHint: leader)
            }
            send(to: leader, .forwardProposal(ForwardProposal(commands: commands)))
            return nil
        case .preCandidate, .candidate:
            throw RaftError(.notLeader, "node \(id) is campaigning in term \(term); no leader is known yet")
        }
    }

    /// Refuses a batch that would take the leader past ``RaftConfiguration/maxUncommittedBytes``
    /// (a leader holding nothing uncommitted takes any batch, so a large one is not refused
    /// forever).
    func uncommittedLimitRefusal(_ commands: [[UInt8]]) -> RaftError? {
        var size = 0
        for c in commands { size += c.count }
        guard config.maxUncommittedBytes > 0 && uncommittedBytes > 0 && uncommittedBytes + size > config.maxUncommittedBytes else {
            return nil
        }
        return RaftError(
            .uncommittedLimitExceeded,
            "the leader holds \(uncommittedBytes) uncommitted bytes and the limit is \(config.maxUncommittedBytes); retry when followers catch up")
    }

    /// Appends a batch the limit admitted and replicates it; throws only storage failures.
    mutating func appendProposals(_ commands: [[UInt8]]) throws(RaftError) -> ProposalReceipt {
        var size = 0
        for c in commands { size += c.count }
        uncommittedBytes += size
        let first = log.lastIndex() + 1
        var entries: [LogEntry] = []
        entries.reserveCapacity(commands.count)
        var index = first
        for c in commands {
            entries.append(LogEntry(term: term, index: index, kind: .command, data: c))
            index = index + 1
        }
        log.append(entries)
        try bcastAppend()
        return ProposalReceipt(term: term, firstIndex: first, lastIndex: index - 1)
    }

    mutating func handleForwardedProposal(_ p: ForwardProposal, from: NodeID) throws(RaftError) {
        switch role {
        case .leader:
            // The originator learns the outcome by watching the log; a full leader, one handing
            // leadership over, and one asked by a node that is not a member drop it.
            guard uncommittedLimitRefusal(p.commands) == nil, leadTransferee.isNone, tracker.contains(from) else { return }
            _ = try appendProposals(p.commands)
        case .follower where !leader.isNone && leader != from:
            send(to: leader, .forwardProposal(p))
        default:
            break
        }
    }

    mutating func reduceUncommitted(_ entries: [LogEntry]) {
        var size = 0
        for i in entries.indices where entries[i].kind == .command { size += entries[i].data.count }
        uncommittedBytes = max(0, uncommittedBytes - size)
    }

    // MARK: Follower side

    mutating func handleAppendEntries(from: NodeID, _ ae: AppendEntries) throws(RaftError) {
        if ae.prevLogIndex < log.committed {
            // Everything up to our commit index matches any leader (leader completeness).
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(index: log.committed, probe: ae.probe)))
            return
        }
        switch try log.maybeAppend(prevIndex: ae.prevLogIndex, prevTerm: ae.prevLogTerm, entries: ae.entries) {
        case .appended(let lastNew, let written):
            if let written { try noteAppended(ae.entries, from: written) }
            if lastNew > verifiedMatch { verifiedMatch = lastNew }
            log.commitTo(min(ae.leaderCommit, lastNew))
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(index: lastNew, probe: ae.probe)))
        case .mismatch:
            // Fast backtracking: point the leader at the last index that can possibly match.
            let probe = min(ae.prevLogIndex, log.lastIndex())
            let (hint, hintTerm) = try log.findConflictByTerm(probe, ae.prevLogTerm)
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(
                index: ae.prevLogIndex, reject: true, rejectHint: hint, rejectHintTerm: hintTerm, probe: ae.probe)))
        case .conflictsWithCommitted:
            // The leader contradicts a committed entry: never overwrite it. Ignore the message.
            break
        }
    }

    mutating func handleHeartbeat(from: NodeID, _ hb: Heartbeat) {
        log.commitTo(min(hb.commit, verifiedMatch))
        send(to: from, .heartbeatResponse(HeartbeatResponse(round: hb.round)))
    }

    mutating func handleInstallSnapshot(from: NodeID, _ s: InstallSnapshot) throws(RaftError) {
        if try restore(s) {
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(index: log.lastIndex())))
        } else {
            send(to: from, .appendEntriesResponse(AppendEntriesResponse(index: log.committed)))
        }
    }

    /// Installs `s` unless it is already covered. Returns whether the log was replaced.
    mutating func restore(_ s: InstallSnapshot) throws(RaftError) -> Bool {
        let meta = s.metadata
        // §7: a snapshot at or below what we committed carries nothing new.
        if meta.index <= log.committed { return false }
        // A node the snapshot's membership does not list may still take it: one added after
        // the snapshot's index learns that from the entries that follow.
        guard role == .follower else { return false }
        if try log.matchTerm(meta.index, meta.term) {
            // We already hold the snapshot's last entry: keep our log and just commit to it.
            log.commitTo(meta.index)
            if meta.index > verifiedMatch { verifiedMatch = meta.index }
            return false
        }
        log.restore(s)
        verifiedMatch = meta.index
        memberships.restore(meta.confState, at: meta.index)
        tracker = ProgressTracker(
            conf: meta.confState, next: log.lastIndex() + 1, maxInflight: config.maxInflightMessages,
            maxInflightBytes: config.maxInflightBytes)
        return true
    }

    // MARK: Leader side

    mutating func stepLeader(_ m: Message) throws(RaftError) {
        guard let i = tracker.slot(of: m.from) else { return }
        switch m.kind {
        case .appendEntriesResponse(let r):
            tracker.progress[i].recentActive = true
            try handleAppendResponse(slot: i, from: m.from, r)
        case .heartbeatResponse(let r):
            tracker.progress[i].recentActive = true
            tracker.progress[i].probeSent = false
            // A full window, or a catching-up follower held back, frees its oldest message: the
            // follower is alive, and an append lost on the way must not stop replication.
            if tracker.progress[i].state == .replicate
                && (tracker.progress[i].inflights.isFull || tracker.progress[i].isHeld(catchUpLimit: catchUpLimit(for: m.from)))
            {
                tracker.progress[i].inflights.freeFirstOne()
            }
            // A follower behind, or caught up but in probe state (reported unreachable, say), gets
            // an append: its answer moves it back to replicate without waiting for a proposal.
            if tracker.progress[i].match < log.lastIndex() || tracker.progress[i].state == .probe {
                try maybeSendAppend(to: m.from, slot: i, sendIfEmpty: true)
            }
            if r.round != 0 { confirmReads(round: r.round, from: m.from) }
        case .readIndex(let r):
            try handleRead(context: r.context, from: m.from, confirmation: r.confirmation)
        default:
            break
        }
    }

    mutating func handleAppendResponse(slot i: Int, from: NodeID, _ r: AppendEntriesResponse) throws(RaftError) {
        let last = log.lastIndex()
        // An answer about entries this leader never had, or to a probe it never sent, is not from
        // a correct peer: ignore it.
        if r.index > last || r.probe > tracker.progress[i].probesSent { return }
        if r.reject {
            var hint = min(r.rejectHint, r.index, last)
            if r.rejectHintTerm > .zero { hint = try log.findConflictByTerm(hint, r.rejectHintTerm).index }
            if tracker.progress[i].maybeDecrTo(rejected: r.index, hint: hint, probe: r.probe) {
                if tracker.progress[i].state == .replicate { tracker.progress[i].becomeProbe() }
                try maybeSendAppend(to: from, slot: i, sendIfEmpty: true)
            }
            return
        }
        guard tracker.progress[i].acceptsAcknowledgement(probe: r.probe) else { return }
        let wasPaused = tracker.progress[i].isPaused || tracker.progress[i].isHeld(catchUpLimit: catchUpLimit(for: from))
        let grew = tracker.progress[i].maybeUpdate(r.index)
        // A follower in probe state that answers at exactly `match` is caught up as far as the
        // leader knows (say, probed after being reported unreachable): it goes back to
        // replicate too, instead of waiting for the next proposal's extra round trip.
        let caughtUpProbe = tracker.progress[i].state == .probe && r.index == tracker.progress[i].match
        guard grew || caughtUpProbe else { return }
        if from == leadTransferee && tracker.progress[i].match == last { sendTimeoutNow(to: from) }
        switch tracker.progress[i].state {
        case .probe:
            tracker.progress[i].becomeReplicate()
        case .snapshot:
            let p = tracker.progress[i]
            if p.match >= p.pendingSnapshot || p.match + 1 >= log.firstIndex() {
                tracker.progress[i].becomeProbe()
                tracker.progress[i].becomeReplicate()
            }
        case .replicate:
            tracker.progress[i].inflights.freeLE(r.index)
        }
        let committed = try maybeCommit()
        // A commit can complete a membership change (a joint one is left, or the leader steps
        // down): the members, and so the slots, may have changed.
        guard let i = tracker.slot(of: from) else { return }
        if committed {
            try bcastAppend()
        } else if wasPaused {
            // The follower may not know the commit index yet (it may have moved since the append
            // it answered): an empty append tells it.
            try maybeSendAppend(to: from, slot: i, sendIfEmpty: true)
        }
        while try maybeSendAppend(to: from, slot: i, sendIfEmpty: false) {}
    }

    /// Advances the commit index to the highest index stored on a quorum, but only if that
    /// entry is from the current term (§5.4.2). Returns whether it moved.
    mutating func maybeCommit() throws(RaftError) -> Bool {
        let q = tracker.committedIndex()
        guard q > log.committed, try log.termOrZero(q) == term else { return false }
        log.commitTo(q)
        termCommitted = true
        try releaseReadsAwaitingCommit()
        try membershipCommitted()
        return true
    }

    mutating func bcastAppend() throws(RaftError) {
        guard role == .leader else { return }
        for (i, peer) in tracker.members.enumerated() where peer != id {
            try maybeSendAppend(to: peer, slot: i, sendIfEmpty: true)
        }
    }

    mutating func bcastHeartbeat(round: UInt64) {
        for (i, peer) in tracker.members.enumerated() where peer != id {
            // Never tell a follower to commit past what it is known to hold.
            let commit = min(tracker.progress[i].match, log.committed)
            send(to: peer, .heartbeat(Heartbeat(commit: commit, round: round)))
        }
    }

    /// Sends the next append (or a snapshot) to one follower if its progress allows.
    @discardableResult
    mutating func maybeSendAppend(to peer: NodeID, slot i: Int, sendIfEmpty: Bool) throws(RaftError) -> Bool {
        // A leader that just stepped down (its removal committed) sends nothing more.
        guard role == .leader else { return false }
        let last = log.lastIndex()
        if tracker.progress[i].next > last + 1 { tracker.progress[i].next = last + 1 }
        let p = tracker.progress[i]
        if p.isPaused { return false }
        let prevIndex = p.next - 1
        // Entries below the first one held were compacted: the follower needs the snapshot.
        guard p.next >= log.firstIndex(), let prevTerm = try log.termIfHeld(prevIndex) else {
            return try maybeSendSnapshot(to: peer, slot: i)
        }
        // A follower that lacks more committed entries than one catch-up message carries (a
        // new learner, a node back from a partition) gets catch-up messages and a small window,
        // so a long replay to it does not crowd out the appends the quorum is waiting for. One
        // that keeps up (it lacks at most the entries not yet committed) is not limited.
        let limit = catchUpLimit(for: peer)
        if p.isHeld(catchUpLimit: limit) { return false }
        var catchingUp = false
        var entries: [LogEntry] = []
        if limit > 0 && p.next <= log.committed {
            let head = try log.slice(p.next, log.committed + 1, maxBytes: min(config.maxMessageBytes, limit / 4))
            if let end = head.last?.index, end < log.committed { (entries, catchingUp) = (head, true) }
        }
        if !catchingUp { entries = try log.slice(p.next, max(p.next, last + 1), maxBytes: config.maxMessageBytes) }
        if entries.isEmpty && !sendIfEmpty { return false }
        tracker.progress[i].catchingUp = catchingUp
        var bytes = 0
        for e in entries { bytes += e.byteSize }
        let probe = p.state == .probe ? tracker.progress[i].nextProbe() : 0
        send(to: peer, .appendEntries(AppendEntries(
            prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: entries, leaderCommit: log.committed, probe: probe)))
        tracker.progress[i].sentEntries(last: entries.last?.index ?? prevIndex, count: entries.count, bytes: bytes)
        return true
    }

    /// ``RaftConfiguration/catchUpMaxInflightBytes`` for `peer`: none for the target of a
    /// leadership transfer (proposals wait for it, so nothing is crowded out, and it must catch
    /// up within an election timeout).
    func catchUpLimit(for peer: NodeID) -> Int { peer == leadTransferee ? 0 : config.catchUpMaxInflightBytes }

    /// The follower needs entries we compacted: send the latest snapshot (§7), with its bytes
    /// or, when the shell streams them (``RaftConfiguration/snapshotSending``), without reading
    /// them.
    mutating func maybeSendSnapshot(to peer: NodeID, slot i: Int) throws(RaftError) -> Bool {
        guard tracker.progress[i].recentActive else { return false }
        let install: InstallSnapshot
        switch config.snapshotSending {
        case .streamedByShell:
            install = InstallSnapshot(metadata: log.snapshotMetadata(), data: .inSenderStorage)
        case .inMessage:
            do { install = InstallSnapshot(snapshot: try log.snapshot()) } catch {
                // A storage still preparing its snapshot says so; the next heartbeat asks again.
                if error.code == .snapshotTemporarilyUnavailable { return false }
                throw error
            }
        }
        guard install.metadata.index > .zero else { return false }
        send(to: peer, .installSnapshot(install))
        tracker.progress[i].becomeSnapshot(install.metadata.index)
        return true
    }
}
