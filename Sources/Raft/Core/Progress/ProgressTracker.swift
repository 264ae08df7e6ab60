/// The membership and, on a leader, the progress of every member, in id order.
///
/// Arrays rather than a dictionary: clusters are small, iteration order must be deterministic
/// (simulations replay), and lookups by linear scan beat hashing at this size.
struct ProgressTracker {
    /// Voter ids, sorted.
    private(set) var voters: [NodeID]
    /// `progress[i]` belongs to `voters[i]`.
    var progress: [Progress]
    /// Votes received in the current election, parallel to `voters` (nil = no answer yet).
    var votes: [Bool?]

    init(voters: [NodeID], next: LogIndex, maxInflight: Int, maxInflightBytes: Int) {
        self.voters = voters.sorted()
        progress = self.voters.map { _ in Progress(next: next, maxInflight: maxInflight, maxInflightBytes: maxInflightBytes) }
        votes = Array(repeating: nil, count: self.voters.count)
    }

    var quorum: Int { voters.count / 2 + 1 }

    func slot(of id: NodeID) -> Int? {
        for i in voters.indices where voters[i] == id { return i }
        return nil
    }

    func contains(_ id: NodeID) -> Bool { slot(of: id) != nil }

    /// The largest index replicated on a quorum (§5.3, §5.4.2).
    func committedIndex() -> LogIndex {
        let n = voters.count
        return withUnsafeTemporaryAllocation(of: LogIndex.self, capacity: n) { buf in
            for i in 0..<n { buf[i] = progress[i].match }
            var b = buf
            b.sort(by: >)
            return buf[quorum - 1]
        }
    }

    /// Election tally of §5.2.
    enum VoteResult { case pending, won, lost }

    mutating func resetVotes() { for i in votes.indices { votes[i] = nil } }

    mutating func recordVote(from id: NodeID, granted: Bool) {
        guard let i = slot(of: id), votes[i] == nil else { return }
        votes[i] = granted
    }

    func tally() -> VoteResult {
        var yes = 0
        var no = 0
        for v in votes {
            if v == true { yes += 1 } else if v == false { no += 1 }
        }
        if yes >= quorum { return .won }
        if no >= quorum || voters.count - no < quorum { return .lost }
        return .pending
    }

    /// Whether a quorum (counting `me`) was heard from recently. Resets the flags.
    mutating func quorumActiveAndReset(me: NodeID) -> Bool {
        var active = 0
        for i in voters.indices {
            if voters[i] == me || progress[i].recentActive { active += 1 }
            progress[i].recentActive = voters[i] == me
        }
        return active >= quorum
    }
}
