/// Read-index requests a leader is confirming with a round of heartbeats (thesis §6.4).
///
/// Invariant: requests are kept in arrival order; confirming one confirms every earlier one.
struct ReadOnlyQueue {
    struct Request {
        var context: [UInt8]
        var index: LogIndex
        var acks: [NodeID]
    }

    var requests: [Request] = []
    /// Contexts received before the leader committed an entry of its term.
    var awaitingCommit: [[UInt8]] = []

    mutating func removeAll() {
        requests.removeAll()
        awaitingCommit.removeAll()
    }
}

extension RaftCore {
    /// Asks for a linearizable read point (thesis §6.4). Once a quorum confirms this node is
    /// still leader, ``Ready/readStates`` carries a ``ReadState`` with `context`; a read served
    /// after applying up to its index reflects every write committed before this call.
    ///
    /// - Parameter context: a non-empty value unique among pending requests, echoed back.
    /// - Throws: ``RaftError/Code/notLeader`` on a non-leader (with the leader hint);
    ///   ``RaftError/Code/invalidConfiguration`` for an empty context.
    ///
    /// Pending requests are dropped without an answer if the node loses leadership; callers
    /// time them out and retry.
    public mutating func readIndex(context: [UInt8]) throws(RaftError) {
        guard !context.isEmpty else {
            throw RaftError(.invalidConfiguration, "a read-index context must not be empty")
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
        readOnly.requests.append(ReadOnlyQueue.Request(context: context, index: log.committed, acks: [id]))
        bcastHeartbeat(context: context)
    }

    mutating func releaseReadsAwaitingCommit() throws(RaftError) {
        guard !readOnly.awaitingCommit.isEmpty, try log.termOrZero(log.committed) == term else { return }
        let pending = readOnly.awaitingCommit
        readOnly.awaitingCommit.removeAll()
        for c in pending { startRead(context: c) }
    }

    mutating func confirmRead(context: [UInt8], from peer: NodeID) {
        guard let k = readOnly.requests.firstIndex(where: { $0.context == context }) else { return }
        if !readOnly.requests[k].acks.contains(peer) { readOnly.requests[k].acks.append(peer) }
        guard readOnly.requests[k].acks.count >= tracker.quorum else { return }
        for r in readOnly.requests[...k] { readStates.append(ReadState(index: r.index, context: r.context)) }
        readOnly.requests.removeSubrange(...k)
    }
}
