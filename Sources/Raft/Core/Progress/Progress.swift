/// What a leader knows about one follower's log.
///
/// Invariant: `match < next`. `match` only grows, except when the follower proves it lost
/// entries it had acknowledged (see ``maybeDecrTo(rejected:hint:probe:)``).
struct Progress {
    /// How the leader sends to this follower.
    typealias State = ReplicationState

    /// Highest index known to be replicated on the follower.
    var match: LogIndex = .zero
    /// Index of the next entry to send.
    var next: LogIndex
    var state: State = .probe
    /// Index of the snapshot in flight (state `.snapshot`).
    var pendingSnapshot: LogIndex = .zero
    /// In `.probe`, a probe was sent and not answered; no more until an answer or a heartbeat.
    var probeSent = false
    /// Heard from within the current election timeout (CheckQuorum).
    var recentActive = false
    /// Probes sent to this follower in this term; the last one's number is ``probesSent``.
    var probesSent: UInt64 = 0
    /// ``probesSent`` when `match` last grew: a probe numbered above it was sent after the
    /// follower acknowledged `match`, so only its answer can prove the follower lost entries.
    var probesSentAtMatch: UInt64 = 0
    /// The probe whose rejection proved the follower lost entries (zero: none). Until a later
    /// probe is answered, acknowledgements are from before the loss (duplicated or reordered
    /// in the network) and must not restore the `match` the follower no longer holds.
    var lossProbe: UInt64 = 0
    var inflights: Inflights
    /// When the last append was sent, the follower lacked more committed entries than one
    /// catch-up message carries (``RaftConfiguration/catchUpMaxInflightBytes``): it is catching
    /// up, gets catch-up messages, and none while that many bytes are in flight.
    var catchingUp = false

    init(next: LogIndex, maxInflight: Int, maxInflightBytes: Int) {
        self.next = next
        inflights = Inflights(capacity: maxInflight, maxBytes: maxInflightBytes)
    }

    /// Whether a follower catching up is held back by
    /// ``RaftConfiguration/catchUpMaxInflightBytes`` (`limit`, zero for none): it has that many
    /// bytes in flight and gets no more until they are acknowledged (or a heartbeat answer
    /// frees the oldest, as for a full window).
    func isHeld(catchUpLimit limit: Int) -> Bool {
        limit > 0 && catchingUp && state == .replicate && inflights.bytes >= limit
    }

    /// Whether the leader should hold back appends to this follower.
    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflights.isFull
        case .snapshot: return true
        }
    }

    mutating func becomeProbe() {
        if state == .snapshot {
            next = max(match + 1, pendingSnapshot + 1)
            pendingSnapshot = .zero
        } else {
            next = match + 1
        }
        state = .probe
        probeSent = false
        inflights.reset()
    }

    mutating func becomeReplicate() {
        state = .replicate
        next = match + 1
        probeSent = false
        inflights.reset()
    }

    mutating func becomeSnapshot(_ index: LogIndex) {
        // The snapshot's acknowledgement carries no probe number; it is judged by its index.
        lossProbe = 0
        state = .snapshot
        pendingSnapshot = index
        probeSent = false
        inflights.reset()
    }

    /// Records a successful append up to `index`. Returns whether `match` grew.
    mutating func maybeUpdate(_ index: LogIndex) -> Bool {
        var updated = false
        if match < index {
            match = index
            updated = true
            probeSent = false
            probesSentAtMatch = probesSent
        }
        if next < index + 1 { next = index + 1 }
        return updated
    }

    /// Records that an append ending at `last` with `count` entries and `bytes` was sent.
    mutating func sentEntries(last: LogIndex, count: Int, bytes: Int) {
        switch state {
        case .replicate:
            if count > 0 {
                next = last + 1
                inflights.add(last, bytes: bytes)
            }
        case .probe:
            probeSent = true
        case .snapshot:
            break
        }
    }

    /// Numbers the next probe (see ``AppendEntries/probe``).
    mutating func nextProbe() -> UInt64 {
        probesSent += 1
        return probesSent
    }

    /// Whether an acknowledgement answering probe number `probe` (zero: not a probe) may be
    /// trusted: not after a proven loss unless it answers a probe sent after it. The first such
    /// answer ends the suspicion.
    mutating func acceptsAcknowledgement(probe: UInt64) -> Bool {
        guard lossProbe != 0 else { return true }
        guard probe > lossProbe else { return false }
        lossProbe = 0
        return true
    }

    /// Handles a rejected append of `rejected` (its `prevLogIndex`); `hint` is where the leader
    /// should probe next; `probe` is the number of the probe answered (zero if none). Returns
    /// whether the rejection was news (not a stale duplicate).
    ///
    /// A rejection at exactly `match`, with a hint below it, answering a probe sent after the
    /// follower acknowledged `match`, means the follower no longer holds entries it
    /// acknowledged (wiped disk, restored backup). The leader forgets what it knew and probes
    /// from the hint, catching the follower up instead of waiting forever. The same rejection
    /// answering anything older is a duplicated or reordered answer from before the follower
    /// caught up: acting on it would throw `match` away and could force a snapshot for nothing.
    mutating func maybeDecrTo(rejected: LogIndex, hint: LogIndex, probe: UInt64) -> Bool {
        // In any state but snapshot: a follower moved back to replicate by a stale duplicate
        // acknowledgement must still be found out by its answer to the probe.
        if state != .snapshot && rejected == match && hint < match && match != .zero && probe > probesSentAtMatch {
            lossProbe = probe
            match = .zero
            state = .probe
            next = hint + 1
            probeSent = false
            pendingSnapshot = .zero
            inflights.reset()
            return true
        }
        // Anything else at or below `match` answers an append from before the follower
        // acknowledged `match`: stale, in every state.
        if rejected <= match && match != .zero { return false }
        if state == .replicate {
            if rejected <= match { return false }  // stale
            next = match + 1
            return true
        }
        if next - 1 != rejected { return false }  // stale: not the probe we sent last
        next = max(min(rejected, hint + 1), match + 1)
        probeSent = false
        return true
    }
}
