/// How fresh the state a ``RaftNode/read(_:_:)`` sees must be.
public enum ReadConsistency: Sendable, Hashable, CustomStringConvertible {
    /// Linearizable (thesis §6.4, ReadIndex): the query sees every write that completed before
    /// the read was called, on any node. The leader confirms it still leads with one heartbeat
    /// round answered by a quorum (shared by every read queued before the round left); a
    /// follower asks the leader for its commit index and waits until it has applied it. Costs a
    /// round trip to a quorum, no disk write.
    case linearizable
    /// Linearizable as long as the clocks keep to the drift bound of
    /// ``RaftConfiguration/readLease`` (thesis §6.4.1): a leader whose lease holds answers at
    /// once, without a round. Falls back to ``linearizable``'s round when the lease has run out,
    /// or when this node's own ticks are late (its last tick is more than one interval old: its
    /// process was paused or its loop stalled). Requires
    /// ``RaftConfiguration/readLease``; without it the read fails with
    /// ``RaftError/Code/invalidArgument``.
    case lease
    /// Whatever this node has applied, without asking anyone: fast, and possibly behind the
    /// cluster by any amount (a partitioned follower, a deposed leader). Each node's stale
    /// reads never go backwards while it runs.
    case stale

    public var description: String {
        switch self {
        case .linearizable: "linearizable"
        case .lease: "lease"
        case .stale: "stale"
        }
    }
}

extension RaftNode {
    /// A read on its way to the run loop: how to run the caller's query against the state
    /// machine and answer, or fail it.
    struct ReadRequest: Sendable {
        var consistency: ReadConsistency
        var token: UInt64
        /// Runs the query on the run loop and answers the caller with its result or error.
        var serve: @Sendable (SM) -> Void
        var fail: @Sendable (any Error) -> Void
    }

    /// Runs `query` against the state machine once it reflects every write that completed
    /// before this call (``ReadConsistency/linearizable``, the default), or as ``ReadConsistency``
    /// says otherwise, and returns its result.
    ///
    /// The query runs on the node's run loop between two applied batches, never against a
    /// half-applied one and never while a snapshot is being restored; a write stalls only while
    /// a query runs (the disk write of the next batch goes on meanwhile), so keep queries
    /// short. It must not keep the state machine or hand it out.
    ///
    /// Works on every node: followers ask the leader for a read index and serve the read
    /// themselves once they have applied it. While there is no leader (an election), the read
    /// waits for one.
    ///
    /// - Throws: what `query` throws; ``RaftError/Code/timeout`` when no read index was confirmed
    ///   (or applied) within ``RaftNodeConfiguration/readTimeoutTicks``, with the leader hint
    ///   (and its address from ``RaftNodeConfiguration/clientAddresses``) when this node knows
    ///   one: a node without a quorum, or cut off from the leader, fails its reads this way;
    ///   ``RaftError/Code/invalidArgument`` for a lease read without
    ///   ``RaftConfiguration/readLease``; ``RaftError/Code/stopped`` when the node stops; and
    ///   `CancellationError` if the task is cancelled.
    public func read<R: Sendable>(
        _ consistency: ReadConsistency = .linearizable, _ query: @escaping @Sendable (SM) throws -> R
    ) async throws -> R {
        try Task.checkCancellation()
        return try await withTicket(cancel: { .cancelRead($0) }) { (token, ticket) in
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
                let request = ReadRequest(
                    consistency: consistency, token: token,
                    serve: { sm in
                        do { c.resume(returning: try query(sm)) } catch { c.resume(throwing: error) }
                    },
                    fail: { c.resume(throwing: $0) })
                let accepted = ticket.state.withLock { s -> Bool? in
                    if s.cancelled { return nil }
                    s.posted = true
                    return inbox.post(.read(request))
                }
                switch accepted {
                case nil: c.resume(throwing: CancellationError())
                case false?: c.resume(throwing: nodeStoppedError(id))
                case true?: break
                }
            }
        }
    }
}
