/// The membership in force and, on a leader, the progress of every member, in id order.
///
/// Arrays rather than a dictionary: clusters are small, iteration order must be deterministic
/// (simulations replay), and lookups by linear scan beat hashing at this size.
///
/// Invariant: `members` is ``ConfState/members`` of `conf`; `progress[i]` and `votes[i]` belong
/// to `members[i]`; `quorum` names the voters' slots in `members`.
struct ProgressTracker {
    /// The membership in force (thesis §4.1: the latest in the log).
    private(set) var conf: ConfState
    /// Every member (voters of both configurations and learners), sorted.
    private(set) var members: [NodeID]
    /// `progress[i]` belongs to `members[i]`.
    var progress: [Progress]
    /// Votes received in the current election, parallel to `members` (nil = no answer yet).
    /// Only voters' answers count.
    var votes: [Bool?]
    /// The voters' slots, for every majority decision.
    private(set) var quorum: Quorum
    private let maxInflight: Int
    private let maxInflightBytes: Int

    init(conf: ConfState, next: LogIndex, maxInflight: Int, maxInflightBytes: Int) {
        self.maxInflight = maxInflight
        self.maxInflightBytes = maxInflightBytes
        self.conf = conf
        members = conf.members
        progress = members.map { _ in Progress(next: next, maxInflight: maxInflight, maxInflightBytes: maxInflightBytes) }
        votes = Array(repeating: nil, count: members.count)
        quorum = Self.quorum(conf, members)
    }

    private static func quorum(_ conf: ConfState, _ members: [NodeID]) -> Quorum {
        func slots(_ ids: [NodeID]) -> [Int] { ids.compactMap { id in members.firstIndex(of: id) } }
        return Quorum(incoming: slots(conf.voters), outgoing: slots(conf.outgoingVoters))
    }

    /// Switches to a new membership. Members that stay keep their progress and votes; new ones
    /// start probing at `next`, counted as recently active (so CheckQuorum does not depose a
    /// leader in the election timeout after it added them).
    mutating func setConf(_ newConf: ConfState, next: LogIndex) {
        let newMembers = newConf.members
        var newProgress: [Progress] = []
        var newVotes: [Bool?] = []
        newProgress.reserveCapacity(newMembers.count)
        for id in newMembers {
            if let i = slot(of: id) {
                newProgress.append(progress[i])
                newVotes.append(votes[i])
            } else {
                var p = Progress(next: next, maxInflight: maxInflight, maxInflightBytes: maxInflightBytes)
                p.recentActive = true
                newProgress.append(p)
                newVotes.append(nil)
            }
        }
        conf = newConf
        members = newMembers
        progress = newProgress
        votes = newVotes
        quorum = Self.quorum(newConf, newMembers)
    }

    /// Every voter of either configuration, sorted, each once.
    var voters: [NodeID] { members.filter { conf.isVoter($0) } }

    func slot(of id: NodeID) -> Int? {
        for i in members.indices where members[i] == id { return i }
        return nil
    }

    /// Whether `id` is a member (voter or learner).
    func contains(_ id: NodeID) -> Bool { slot(of: id) != nil }

    /// Whether `id` votes (in either configuration).
    func isVoter(_ id: NodeID) -> Bool { conf.isVoter(id) }

    /// Whether this membership has exactly one voter, `id` (it decides alone).
    func isSoleVoter(_ id: NodeID) -> Bool { !conf.isJoint && conf.voters == [id] }

    /// The largest index replicated on a quorum (§5.3, §5.4.2; both majorities while joint).
    func committedIndex() -> LogIndex { quorum.committedIndex { progress[$0].match } }

    mutating func resetVotes() { for i in votes.indices { votes[i] = nil } }

    mutating func recordVote(from id: NodeID, granted: Bool) {
        guard let i = slot(of: id), votes[i] == nil else { return }
        votes[i] = granted
    }

    /// Election tally of §5.2, against every configuration in force.
    func tally() -> Quorum.Result { quorum.result { votes[$0] } }

    /// Whether a quorum (counting `me`) was heard from recently. Resets the flags.
    mutating func quorumActiveAndReset(me: NodeID) -> Bool {
        let active = quorum.isSatisfied { members[$0] == me || progress[$0].recentActive }
        for i in members.indices { progress[i].recentActive = members[i] == me }
        return active
    }
}
