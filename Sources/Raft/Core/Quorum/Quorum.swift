/// Every decision that needs "a majority": a majority of one voter set or, while a joint change
/// is in progress, a majority of the old voters *and* a majority of the new (thesis §4.3).
/// Election, commit, CheckQuorum, ReadIndex and the lease all decide through it, so none of them
/// counts votes by hand or forgets the second set.
///
/// Voters are named by their slot in the ``ProgressTracker``'s member list, so a decision reads
/// the tracker's arrays directly, without hashing.
struct Quorum {
    /// Slots of the voters (during a joint change, of the new configuration's).
    let incoming: [Int]
    /// Slots of the old configuration's voters during a joint change; empty otherwise.
    let outgoing: [Int]

    var isJoint: Bool { !outgoing.isEmpty }

    /// The outcome of a vote.
    enum Result: Equatable { case pending, won, lost }

    /// The largest index held by a majority of each set (§5.3), given each slot's match index.
    /// A node with no voters commits nothing.
    func committedIndex(_ match: (Int) -> LogIndex) -> LogIndex {
        let a = Self.majorityIndex(incoming, match)
        return isJoint ? min(a, Self.majorityIndex(outgoing, match)) : a
    }

    /// The outcome given each slot's answer (`nil`: none yet). Joint: won when both sets won,
    /// lost as soon as either lost.
    func result(_ answer: (Int) -> Bool?) -> Result {
        let a = Self.majorityResult(incoming, answer)
        guard isJoint else { return a }
        let b = Self.majorityResult(outgoing, answer)
        if a == .lost || b == .lost { return .lost }
        if a == .won && b == .won { return .won }
        return .pending
    }

    /// Whether the slots for which `yes` holds form a quorum.
    func isSatisfied(_ yes: (Int) -> Bool) -> Bool { result { yes($0) ? true : nil } == .won }

    private static func majorityIndex(_ slots: [Int], _ match: (Int) -> LogIndex) -> LogIndex {
        let n = slots.count
        if n == 0 { return .zero }
        return withUnsafeTemporaryAllocation(of: LogIndex.self, capacity: n) { buf in
            for i in 0..<n { buf[i] = match(slots[i]) }
            var b = buf
            b.sort(by: >)
            return buf[n / 2]
        }
    }

    private static func majorityResult(_ slots: [Int], _ answer: (Int) -> Bool?) -> Result {
        let n = slots.count
        if n == 0 { return .lost }
        let needed = n / 2 + 1
        var yes = 0
        var no = 0
        for s in slots {
            switch answer(s) {
            case true?: yes += 1
            case false?: no += 1
            case nil: break
            }
        }
        if yes >= needed { return .won }
        if n - no < needed { return .lost }
        return .pending
    }
}
