/// What the core produced in steps taken while its shell persists a batch
/// (``RaftCore/stepWithoutStorage(_:)``, ``RaftCore/readIndexWithoutStorage(context:confirmation:)``),
/// collected with ``RaftCore/takeInterimOutput()``.
public struct InterimOutput: Sendable {
    /// Messages that may be sent at once: none depends on anything not yet durable (they are
    /// made only while the term and vote are durable, and none acknowledges entries).
    public var messages: [Message]
    /// Read-index requests confirmed; each may be served once the state machine has applied
    /// ``ReadState/index``, as those of ``Ready/readStates``.
    public var readStates: [ReadState]

    /// Whether there is nothing to send or serve.
    public var isEmpty: Bool { messages.isEmpty && readStates.isEmpty }
}

// Steps that read no storage and touch nothing a batch in flight depends on, so a shell may
// take them between `ready()` and `advance(_:)` while another thread writes that batch: the
// messages of read rounds (heartbeats and their answers, read-index requests and answers) and
// the reads themselves. A linearizable read then costs one round trip, instead of waiting for
// the leader's and each follower's disk write before its round can go out and be answered
// (thesis §6.4 needs only that a quorum confirms the leadership after the read arrived; no
// disk write is part of that).
extension RaftCore {
    /// Takes the part of `m` that needs no storage, if `m` is a message of a read round in
    /// this node's current term:
    ///
    /// - a follower answers its leader's heartbeat (and learns the commit index from it);
    /// - a leader counts a heartbeat answer towards the read rounds it confirms (and answers
    ///   every read it completes a quorum for);
    /// - a leader that has committed an entry of its term registers a follower's read-index
    ///   request (sending a heartbeat round for it if none is queued);
    /// - a follower records the leader's answer to its read-index request.
    ///
    /// It reads no storage and changes nothing a ``Ready`` in flight depends on: a shell may call
    /// it between ``ready()`` and ``advance(_:)`` while another thread persists the batch, and
    /// then collect what it produced with ``takeInterimOutput()`` (or with the next ``ready()``).
    /// It does nothing while the term or vote are not yet durable, or after a storage failure.
    ///
    /// - Returns: whether `m` was handled completely. When `false`, hand `m` to ``step(_:)``
    ///   once the batch is persisted: what this call took of it (a heartbeat answer's read
    ///   round) is not counted twice.
    public mutating func stepWithoutStorage(_ m: Message) -> Bool {
        guard storageFailure == nil, m.to == id, m.term == term, termAndVoteDurable else { return false }
        do { try validate(m) } catch { return false }
        return interim { (c) -> Bool in
            switch (c.role, m.kind) {
            case (.follower, .heartbeat(let hb)) where m.from == c.leader:
                c.electionElapsed = 0
                c.handleHeartbeat(from: m.from, hb)
                return true
            case (.leader, .heartbeatResponse(let r)):
                // The rest of the answer (the follower's progress, the next append) reads the
                // log: it waits for step(_:).
                if r.round != 0, c.tracker.slot(of: m.from) != nil { c.confirmReads(round: r.round, from: m.from) }
                return false
            case (.leader, .readIndex(let r)):
                guard c.termCommitted, c.tracker.slot(of: m.from) != nil else { return false }
                c.startRead(context: r.context, from: m.from, confirmation: r.confirmation)
                return true
            case (_, .readIndexResponse(let r)):
                // As in step(_:): only for a request outstanding, once.
                guard let request = c.readOnly.forwarded.removeValue(forKey: r.context) else { return true }
                c.readStates.append(ReadState(index: r.index, context: request.context))
                return true
            default:
                return false
            }
        }
    }

    /// Asks for a linearizable read point as ``readIndex(context:confirmation:)`` does, but only
    /// if that needs no storage: on a leader that has committed an entry of its term, or on a
    /// follower that knows its leader, while the term and vote are durable. Like
    /// ``stepWithoutStorage(_:)`` it may be called while another thread persists a batch; its
    /// heartbeats or request leave with ``takeInterimOutput()``.
    ///
    /// - Returns: whether the request was registered; when `false`, call
    ///   ``readIndex(context:confirmation:)`` once the batch is persisted (it also reports why
    ///   a request cannot be taken).
    public mutating func readIndexWithoutStorage(context: [UInt8], confirmation: ReadConfirmation = .quorum) -> Bool {
        guard storageFailure == nil, !context.isEmpty, termAndVoteDurable, confirmation == .quorum || config.readLease != nil else {
            return false
        }
        return interim { (c) -> Bool in
            switch c.role {
            case .leader where c.termCommitted:
                c.startRead(context: context, from: c.id, confirmation: confirmation)
                return true
            case .follower where !c.leader.isNone:
                let wire = c.readOnly.forward(context)
                c.send(to: c.leader, .readIndex(ReadIndexRequest(context: wire, confirmation: confirmation)))
                return true
            case .leader, .follower, .preCandidate, .candidate:
                return false
            }
        }
    }

    /// Hands out what ``stepWithoutStorage(_:)`` and ``readIndexWithoutStorage(context:confirmation:)``
    /// produced: messages to send now and reads confirmed. May be called at any time; what it
    /// leaves (nothing) is not handed out again by ``ready()``.
    public mutating func takeInterimOutput() -> InterimOutput {
        let out = InterimOutput(messages: interimOutbox, readStates: readStates)
        if !interimOutbox.isEmpty {
            // A read round queued here leaves now: a later read needs its own.
            readOnly.roundUnsent = false
        }
        interimOutbox = []
        readStates = []
        return out
    }

    /// Whether the term and vote in memory are the ones the shell reported durable: then no
    /// message made now depends on a write in flight.
    var termAndVoteDurable: Bool { term == persistedHardState.term && vote == persistedHardState.vote }

    /// Runs `body` with every message it sends routed to ``takeInterimOutput()``.
    mutating func interim<T>(_ body: (inout RaftCore) -> T) -> T {
        interimSending = true
        defer { interimSending = false }
        return body(&self)
    }
}
