/// The memberships a node's log holds above its snapshot, so the one in force is always the
/// latest (thesis §4.1) and a truncation brings back the one before.
///
/// Invariant: `changes` is sorted by index, every index is above `baseIndex`, and every entry
/// at such an index in the log is a membership entry holding that value.
struct MembershipHistory {
    /// The membership at `baseIndex` (the snapshot's, or the bootstrap's at index 0).
    private(set) var base: ConfState
    private(set) var baseIndex: LogIndex
    /// Membership entries above `baseIndex`, in log order.
    private(set) var changes: [(index: LogIndex, conf: ConfState)] = []

    init(base: ConfState, at index: LogIndex) {
        self.base = base
        baseIndex = index
    }

    /// The membership in force: the latest in the log.
    var current: ConfState { changes.last?.conf ?? base }

    /// The membership before ``current`` (``current`` itself when the log holds no change).
    var previous: ConfState {
        if changes.count >= 2 { return changes[changes.count - 2].conf }
        return base
    }

    /// The index of the entry that set ``current`` (`baseIndex` if no entry did).
    var currentIndex: LogIndex { changes.last?.index ?? baseIndex }

    /// The membership in force at `index`, or `nil` below the snapshot (no longer known).
    func conf(at index: LogIndex) -> ConfState? {
        if index < baseIndex { return nil }
        for c in changes.reversed() where c.index <= index { return c.conf }
        // A node that joined with no membership received the log before the entry that added
        // it, but the membership those entries were written under is in none of them.
        return base.isEmpty ? nil : base
    }

    mutating func append(_ conf: ConfState, at index: LogIndex) { changes.append((index, conf)) }

    /// Forgets memberships from entries at `index` and above (a leader replaced them). Returns
    /// whether the one in force changed.
    mutating func truncate(from index: LogIndex) -> Bool {
        guard let last = changes.last, last.index >= index else { return false }
        changes.removeAll { $0.index >= index }
        return true
    }

    /// Starts over from a snapshot.
    mutating func restore(_ conf: ConfState, at index: LogIndex) {
        base = conf
        baseIndex = index
        changes = []
    }
}

extension RaftCore {
    // MARK: Inspection

    /// The membership this node uses: the latest in its log, committed or not (thesis §4.1).
    public var membership: ConfState { tracker.conf }

    /// The index of the entry that set ``membership`` (the snapshot's index when no entry above
    /// it did). The change is committed once ``commitIndex`` reaches it.
    public var membershipIndex: LogIndex { memberships.currentIndex }

    /// The membership in force at `index`: what a snapshot taken at `index` must record. `nil`
    /// when this node does not know it: below the latest snapshot (whose membership is the
    /// oldest it still knows), and, on a node that joined with no membership, below the first
    /// membership entry it received.
    public func membership(at index: LogIndex) -> ConfState? { memberships.conf(at: index) }

    /// Whether a membership change is unfinished: its entry is not committed yet, or the cluster
    /// is in a joint configuration.
    public var membershipChangePending: Bool { memberships.currentIndex > log.committed || tracker.conf.isJoint }

    // MARK: Proposing changes

    /// Proposes a change of membership: one member or several at once (see
    /// ``MembershipChangeMode``). The change takes effect on the leader at once, and on each
    /// follower when it appends the entry; the receipt's `lastIndex` is the entry, committed once
    /// ``commitIndex`` reaches it. A joint change left automatically appends a second entry when
    /// the first commits: the change is complete when ``membershipChangePending`` is `false`.
    ///
    /// - Throws, changing nothing: ``RaftError/Code/notLeader`` (with the hint) off the leader;
    ///   ``RaftError/Code/leadershipTransferInProgress`` while a transfer is pending;
    ///   ``RaftError/Code/membershipChangeInProgress`` while another change is unfinished, or
    ///   before this leader committed an entry of its term (a rule that keeps changes of
    ///   successive leaders from overlapping); ``RaftError/Code/invalidArgument`` and
    ///   ``RaftError/Code/unknownPeer`` for a change that cannot apply
    ///   (``ConfState/applying(_:mode:)``); a storage failure.
    @discardableResult
    public mutating func proposeMembershipChange(
        _ changes: [MembershipChange], mode: MembershipChangeMode = .automatic
    ) throws(RaftError) -> ProposalReceipt {
        try checkCanChangeMembership()
        if tracker.conf.isJoint {
            throw RaftError(
                .membershipChangeInProgress,
                "node \(id): the cluster is in a joint membership (old voters \(tracker.conf.outgoingVoters), new \(tracker.conf.voters)); leave it first")
        }
        let next = try tracker.conf.applying(changes, mode: mode)
        try RaftConfiguration.validate(next)
        return try guarded { (c) throws(RaftError) in try c.appendMembership(next) }
    }

    /// Proposes the entry that completes a joint change made with `autoLeave: false`.
    ///
    /// - Throws: as ``proposeMembershipChange(_:mode:)``; ``RaftError/Code/invalidArgument`` when
    ///   the membership is not joint.
    @discardableResult
    public mutating func leaveJointMembership() throws(RaftError) -> ProposalReceipt {
        try checkCanChangeMembership()
        guard let next = tracker.conf.leavingJoint else {
            throw RaftError(.invalidArgument, "node \(id): the membership is not joint; there is nothing to leave")
        }
        return try guarded { (c) throws(RaftError) in try c.appendMembership(next) }
    }

    func checkCanChangeMembership() throws(RaftError) {
        if let storageFailure { throw storageFailure }
        guard role == .leader else {
            throw RaftError(.notLeader, "node \(id) is not the leader; send membership changes to the leader", leaderHint: leader)
        }
        if !leadTransferee.isNone {
            throw RaftError(
                .leadershipTransferInProgress, "node \(id) is handing leadership to \(leadTransferee)", leaderHint: leadTransferee)
        }
        if memberships.currentIndex > log.committed {
            throw RaftError(
                .membershipChangeInProgress,
                "node \(id): the membership change at index \(memberships.currentIndex) is not committed yet (commit index \(log.committed))")
        }
        if !termCommitted {
            throw RaftError(
                .membershipChangeInProgress,
                "node \(id) was elected in term \(term) and has not committed an entry of its term yet; retry shortly")
        }
    }

    /// Appends a membership entry on the leader, switches to it and replicates it.
    mutating func appendMembership(_ next: ConfState) throws(RaftError) -> ProposalReceipt {
        let index = log.lastIndex() + 1
        log.append([LogEntry(term: term, index: index, kind: .membership, data: next.encoded())])
        memberships.append(next, at: index)
        useMembership(next)
        // A sole voter commits it when `advance` reports it durable.
        try bcastAppend()
        return ProposalReceipt(term: term, firstIndex: index, lastIndex: index)
    }

    /// Switches the tracker to `conf`, keeping what it knows of members that stay.
    mutating func useMembership(_ conf: ConfState) {
        tracker.setConf(conf, next: log.lastIndex() + 1)
        if role == .leader, let me = tracker.slot(of: id) {
            tracker.progress[me].match = max(tracker.progress[me].match, log.stableLastIndex)
            tracker.progress[me].next = log.lastIndex() + 1
            tracker.progress[me].state = .replicate
            tracker.progress[me].recentActive = true
        }
        if !leadTransferee.isNone && !conf.isVoter(leadTransferee) { abortLeadershipTransfer() }
    }

    // MARK: Following the log

    /// Records the memberships among entries appended from `from` on (entries below it were
    /// already held), after forgetting those of entries replaced from there.
    mutating func noteAppended(_ entries: [LogEntry], from: LogIndex) throws(RaftError) {
        var changed = memberships.truncate(from: from)
        for e in entries where e.kind == .membership && e.index >= from {
            memberships.append(try Self.decodeMembership(e), at: e.index)
            changed = true
        }
        if changed { useMembership(memberships.current) }
    }

    /// The membership a membership entry carries.
    static func decodeMembership(_ e: LogEntry) throws(RaftError) -> ConfState {
        do {
            let conf = try ConfState(decoding: e.data[...])
            try RaftConfiguration.validate(conf)
            return conf
        } catch {
            throw RaftError(.corruption, "membership entry \(e.index) (term \(e.term)): \(error.message)")
        }
    }

    /// Reads the memberships of entries above the snapshot, at startup.
    static func loadMemberships(_ storage: any LogStorage, base: ConfState, at baseIndex: LogIndex) throws(RaftError) -> MembershipHistory {
        var history = MembershipHistory(base: base, at: baseIndex)
        let found: [LogEntry]
        do { found = try storage.membershipEntries() } catch {
            throw RaftLog.storageFailure(error, reading: "the membership entries")
        }
        var previous = baseIndex
        for e in found {
            guard e.kind == .membership, e.index > previous, e.index <= storage.lastIndex() else {
                throw RaftError(
                    .storage,
                    "storage returned entry \(e.index) (\(e.kind)) among its membership entries: they must be membership entries above the snapshot at \(baseIndex), in order")
            }
            history.append(try decodeMembership(e), at: e.index)
            previous = e.index
        }
        return history
    }

    /// On the leader, after the commit index moved: completes what a committed membership asks
    /// for. A joint membership left automatically gets its leaving entry; a leader that is no
    /// longer a voter hands over and steps down (thesis §4.2.2: it led until its removal
    /// committed, counting not itself).
    mutating func membershipCommitted() throws(RaftError) {
        guard role == .leader, memberships.currentIndex <= log.committed else { return }
        let conf = tracker.conf
        if !conf.isVoter(id) {
            // The most caught-up voter campaigns at once instead of waiting for its timeout.
            var best: (slot: Int, match: LogIndex)?
            for (i, m) in tracker.members.enumerated() where conf.isVoter(m) {
                let match = tracker.progress[i].match
                if best == nil || match > best!.match { best = (i, match) }
            }
            if let best, best.match == log.lastIndex() { sendTimeoutNow(to: tracker.members[best.slot]) }
            becomeFollower(term: term, leader: .none)
            return
        }
        if conf.isJoint && conf.autoLeave && leadTransferee.isNone, let next = conf.leavingJoint {
            _ = try appendMembership(next)
        }
    }
}
