/// Read-index requests a leader is confirming with rounds of heartbeats (thesis §6.4).
///
/// Each heartbeat round that confirms reads has a number, increasing within the term; a request
/// records the round sent after it arrived. A follower's answer to round `r` shows it still
/// followed this leader after every request of round `r` or less was registered; a quorum of
/// such answers (the leader counting itself) confirms them. Rounds, not the callers' contexts,
/// are matched, so a context reused for a later read can never be confirmed by answers to an
/// earlier round (which would let a deposed leader serve a stale read).
///
/// Invariant: requests are in arrival order, so their rounds never decrease; confirming one
/// confirms every earlier one.
struct ReadOnlyQueue {
    struct Request {
        var context: [UInt8]
        var index: LogIndex
        var round: UInt64
    }

    var requests: [Request] = []
    /// Contexts received before the leader committed an entry of its term.
    var awaitingCommit: [[UInt8]] = []
    /// The last round sent in this term.
    var round: UInt64 = 0
    /// The highest round each follower answered in this term.
    var answered: [NodeID: UInt64] = [:]
    /// Whether the heartbeats of `round` are still queued, not yet handed out in a ``Ready``: a
    /// read registered now may share that round (its heartbeats leave after it), so reads that
    /// arrive together cost one round (batching).
    var roundUnsent = false

    /// Numbers a new round, whose heartbeats the caller queues.
    mutating func nextRound() -> UInt64 {
        round += 1
        roundUnsent = true
        return round
    }

    /// Forgets everything (a new term): pending requests are dropped unanswered.
    mutating func removeAll() {
        requests.removeAll()
        awaitingCommit.removeAll()
        round = 0
        roundUnsent = false
        answered.removeAll()
    }
}

extension RaftCore {
    /// Asks for a linearizable read point (thesis §6.4). Once a quorum confirms this node is
    /// still leader, ``Ready/readStates`` carries a ``ReadState`` with `context`; a read served
    /// after applying up to its index reflects every write committed before this call.
    ///
    /// - Parameter context: a non-empty value identifying the request, echoed back in its
    ///   ``ReadState``. Safety does not depend on it being unique (heartbeat rounds are matched,
    ///   not contexts), but a caller that reuses one cannot tell its answers apart.
    /// - Throws: ``storageFailure`` once the core stopped (or a new storage failure, which stops
    ///   it); ``RaftError/Code/notLeader`` on a non-leader (with the leader hint);
    ///   ``RaftError/Code/invalidArgument`` for an empty context.
    ///
    /// Pending requests are dropped without an answer if the node loses leadership; callers
    /// time them out and retry.
    public mutating func readIndex(context: [UInt8]) throws(RaftError) {
        if let storageFailure { throw storageFailure }
        guard !context.isEmpty else {
            throw RaftError(.invalidArgument, "a read-index context must not be empty")
        }
        guard role == .leader else {
            throw RaftError(.notLeader, "node \(id) is not the leader; read from the leader", leaderHint: leader.isNone ? nil : leader)
        }
        try guarded { (c) throws(RaftError) in
            if try c.log.termOrZero(c.log.committed) != c.term {
                // The commit index is only known to be current once an entry of this term commits.
                c.readOnly.awaitingCommit.append(context)
                return
            }
            c.startRead(context: context)
        }
    }

    mutating func startRead(context: [UInt8]) {
        if tracker.voters.count == 1 {
            readStates.append(ReadState(index: log.committed, context: context))
            return
        }
        if readOnly.roundUnsent {
            readOnly.requests.append(ReadOnlyQueue.Request(context: context, index: log.committed, round: readOnly.round))
            return
        }
        let round = readOnly.nextRound()
        readOnly.requests.append(ReadOnlyQueue.Request(context: context, index: log.committed, round: round))
        bcastHeartbeat(round: round)
    }

    mutating func releaseReadsAwaitingCommit() throws(RaftError) {
        guard !readOnly.awaitingCommit.isEmpty, try log.termOrZero(log.committed) == term else { return }
        let pending = readOnly.awaitingCommit
        readOnly.awaitingCommit.removeAll()
        for c in pending { startRead(context: c) }
    }

    /// A follower answered heartbeat round `round`: release every request it completes a quorum
    /// for.
    mutating func confirmReads(round: UInt64, from peer: NodeID) {
        // A round this leader never sent is not from a correct peer.
        guard round <= readOnly.round, round > readOnly.answered[peer, default: 0] else { return }
        readOnly.answered[peer] = round
        var confirmed = 0
        for r in readOnly.requests {
            var acks = 1  // the leader itself
            for v in tracker.voters where v != id && readOnly.answered[v, default: 0] >= r.round { acks += 1 }
            guard acks >= tracker.quorum else { break }
            readStates.append(ReadState(index: r.index, context: r.context))
            confirmed += 1
        }
        if confirmed > 0 { readOnly.requests.removeFirst(confirmed) }
    }
}
