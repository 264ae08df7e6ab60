import Raft

/// Checks the safety properties of Raft (paper figure 3) after every step of a simulation.
///
/// It watches each node's durable log through a prefix hash per index (``SimStateMachine/chain(_:_:)``),
/// so that "two logs agree up to index i" is one comparison, and it keeps the hash of every
/// committed prefix ever observed, so that "every node commits and applies the same entries"
/// is one comparison per index.
///
/// Properties checked:
/// - **Election safety**: at most one leader per term.
/// - **Leader append-only**: while a node leads a term its durable log only grows.
/// - **Log matching**: two durable logs with an entry of the same index and term agree on every
///   entry up to it.
/// - **Leader completeness**: a leader's log holds every entry known committed.
/// - **State machine safety**: no two nodes apply different entries at one index.
/// - **Monotonic commit**: a node's commit index never decreases while it runs, and its
///   durable commit never decreases across restarts; `applied <= commit <= lastIndex`.
public final class SafetyChecker {
    struct LogView {
        /// Index of `terms[0]` / `hashes[0]` (the snapshot index, or zero).
        var base: LogIndex = .zero
        var terms: [Term] = [.zero]
        var hashes: [UInt64] = [SimStateMachine.seed]
        var last: LogIndex { base + UInt64(terms.count - 1) }
        func term(_ i: LogIndex) -> Term? { i >= base && i <= last ? terms[base.distance(to: i)] : nil }
        func hash(_ i: LogIndex) -> UInt64? { i >= base && i <= last ? hashes[base.distance(to: i)] : nil }
    }

    /// Every violation found, in order. Empty means all properties held.
    public private(set) var violations: [String] = []
    private var leaderOfTerm: [Term: NodeID] = [:]
    /// committedHash[i]: the hash of the committed prefix ending at i (0 = not known yet).
    private var committedHash: [UInt64] = [SimStateMachine.seed]
    private var views: [LogView]
    private var liveCommit: [LogIndex]
    private var durableCommit: [LogIndex]
    private var durableHard: [HardState]
    private var leading: [(term: Term, last: LogIndex, hash: UInt64)?]
    private let ids: [NodeID]

    /// Creates a checker for nodes `ids` (in cluster order).
    public init(ids: [NodeID]) {
        self.ids = ids
        views = Array(repeating: LogView(), count: ids.count)
        liveCommit = Array(repeating: .zero, count: ids.count)
        durableCommit = Array(repeating: .zero, count: ids.count)
        durableHard = Array(repeating: HardState(), count: ids.count)
        leading = Array(repeating: nil, count: ids.count)
    }

    func fail(_ s: String) { violations.append(s) }

    /// The highest index whose committed hash is known.
    var highestKnownCommitted: LogIndex { LogIndex(rawValue: UInt64(committedHash.count - 1)) }

    func recordCommitted(_ i: LogIndex, _ h: UInt64, by node: Int, what: String) {
        let k = Int(i.rawValue)
        while committedHash.count <= k { committedHash.append(0) }
        if committedHash[k] == 0 {
            committedHash[k] = h
        } else if committedHash[k] != h {
            fail("state machine safety: node \(ids[node]) \(what) a different entry at index \(i) than another node")
        }
    }

    /// Leader `n` committed `index` (of `term`) counting with `membership`: the entry must be
    /// durable on a majority of its voters, and of its outgoing voters while joint (thesis
    /// §4.3: no entry commits without a majority of every configuration in force).
    func checkCommitQuorum(leader n: Int, index: LogIndex, term: Term, membership: ConfState) {
        for (name, set) in [("voters", membership.voters), ("outgoing voters", membership.outgoingVoters)] where !set.isEmpty {
            var holding: [NodeID] = []
            for id in set {
                guard let k = ids.firstIndex(of: id) else { continue }
                if views[k].term(index) == term { holding.append(id) }
            }
            if holding.count <= set.count / 2 {
                fail(
                    "commit quorum: leader \(ids[n]) committed \(index)/\(term) held durably only by \(holding) of its \(name) \(set)")
            }
        }
    }

    // MARK: Log changes

    /// Node `n` persisted a snapshot.
    func snapshotInstalled(_ n: Int, index: LogIndex, term: Term, hash: UInt64) {
        views[n] = LogView(base: index, terms: [term], hashes: [hash])
        recordCommitted(index, hash, by: n, what: "installed a snapshot with")
    }

    /// Node `n` persisted `entries` (a conflicting suffix is replaced).
    func entriesPersisted(_ n: Int, _ entries: [LogEntry]) {
        guard let first = entries.first?.index else { return }
        var v = views[n]
        if first > v.last + 1 {
            fail("log: node \(ids[n]) persisted entry \(first) after a gap (last index \(v.last))")
            return
        }
        if first <= v.base {
            fail("log: node \(ids[n]) overwrote entry \(first) at or below its snapshot \(v.base)")
            return
        }
        let keep = v.base.distance(to: first)
        v.terms.removeSubrange(keep...)
        v.hashes.removeSubrange(keep...)
        var h = v.hashes[keep - 1]
        for e in entries {
            h = SimStateMachine.chain(h, e)
            v.terms.append(e.term)
            v.hashes.append(h)
        }
        views[n] = v
        // Log matching over the region that changed.
        for m in views.indices where m != n {
            let o = views[m]
            var i = max(first, o.base)
            let hi = min(v.last, o.last)
            while i <= hi {
                if v.term(i) == o.term(i) && v.hash(i) != o.hash(i) {
                    fail("log matching: nodes \(ids[n]) and \(ids[m]) both hold term \(v.term(i)!) at index \(i) but their logs differ before it")
                    return
                }
                i = i + 1
            }
        }
    }

    /// Node `n` compacted its log up to `index`.
    func compacted(_ n: Int, upTo index: LogIndex) {
        var v = views[n]
        guard index > v.base, index <= v.last else { return }
        let drop = v.base.distance(to: index)
        v.terms.removeFirst(drop)
        v.hashes.removeFirst(drop)
        v.base = index
        views[n] = v
    }

    /// Node `n` lost its whole disk (scenario tests only): forget what it held.
    func wiped(_ n: Int) {
        views[n] = LogView()
        durableCommit[n] = .zero
        durableHard[n] = HardState()
        liveCommit[n] = .zero
        leading[n] = nil
    }

    /// Records a leader as soon as it can act, before its batch completes.
    func observeRole(_ n: Int, core: RaftCore) {
        guard core.role == .leader else { return }
        if let other = leaderOfTerm[core.term], other != ids[n] {
            fail("election safety: nodes \(other) and \(ids[n]) are both leaders of term \(core.term)")
        }
        leaderOfTerm[core.term] = ids[n]
    }

    /// Node `n` reopened its storage after a crash: rebuild its log view from what survived,
    /// and check that nothing it had synced is missing: its log is what it synced, possibly
    /// followed by (or replaced from the first unsynced index by) a prefix of the `unsynced`
    /// entries it wrote without syncing; its term and vote did not go back.
    func reloaded(_ n: Int, storage s: any WritableLogStorage, unsynced: [LogEntry]) {
        let old = views[n]
        let hs = s.currentHardState
        if hs.term < durableHard[n].term || (hs.term == durableHard[n].term && !durableHard[n].vote.isNone && hs.vote != durableHard[n].vote) {
            fail("durability: node \(ids[n]) synced term \(durableHard[n].term) vote \(durableHard[n].vote) but reopened with term \(hs.term) vote \(hs.vote)")
        }
        let baseIndex = s.firstIndex() - 1
        guard let t = try? s.term(at: baseIndex) else {
            fail("storage: node \(ids[n]) reopened without the term of its compaction point \(baseIndex)")
            return
        }
        var h: UInt64
        if let known = old.hash(baseIndex), old.term(baseIndex) == t {
            h = known
        } else if Int(baseIndex.rawValue) < committedHash.count, committedHash[Int(baseIndex.rawValue)] != 0 {
            h = committedHash[Int(baseIndex.rawValue)]
        } else {
            fail("storage: node \(ids[n]) reopened with a compaction point \(baseIndex) it never had")
            return
        }
        // What the log may legally be: the synced view, or that view replaced from the first
        // unsynced index by the unsynced entries (of which any prefix may have survived).
        var expected = old
        if let first = unsynced.first?.index, first > expected.base, first <= expected.last + 1 {
            let keep = expected.base.distance(to: first)
            expected.terms.removeSubrange(keep...)
            expected.hashes.removeSubrange(keep...)
            var hh = expected.hashes[keep - 1]
            for e in unsynced {
                hh = SimStateMachine.chain(hh, e)
                expected.terms.append(e.term)
                expected.hashes.append(hh)
            }
        }
        views[n] = LogView(base: baseIndex, terms: [t], hashes: [h])
        let last = s.lastIndex()
        if last > baseIndex, let es = try? s.entries(in: (baseIndex + 1)..<(last + 1), maxBytes: .max) {
            entriesPersisted(n, es)
        }
        let now = views[n]
        let syncedLast = unsynced.first.map { min(old.last, $0.index - 1) } ?? old.last
        if now.last < syncedLast {
            fail("durability: node \(ids[n]) had synced its log up to \(syncedLast) but reopened ending at \(now.last)")
        }
        var i = max(now.base, expected.base)
        while i <= now.last {
            if let want = expected.hash(i), now.hash(i) != want {
                fail("durability: node \(ids[n]) reopened with entry \(i) it never wrote")
                break
            }
            if expected.hash(i) == nil && i > expected.last {
                fail("durability: node \(ids[n]) reopened with entry \(i) past anything it wrote")
                break
            }
            i = i + 1
        }
    }

    /// Node `n` restarted: its in-memory commit starts again from what it persisted.
    func restarted(_ n: Int, commit: LogIndex) {
        liveCommit[n] = commit
        leading[n] = nil
    }

    /// Node `n` applied `sm.applied` (or restored a snapshot to it).
    func applied(_ n: Int, _ sm: SimStateMachine) {
        recordCommitted(sm.applied, sm.hash, by: n, what: "applied")
    }

    // MARK: Per-step checks

    /// Checks node `n` after it handled a batch.
    /// `synced` says whether the storage's hard state is durable now (a commit-only change may
    /// be buffered until the next sync; only durable values must never go back).
    func check(_ n: Int, core: RaftCore, storage: any WritableLogStorage, synced: Bool) {
        let id = ids[n]
        let commit = core.commitIndex
        if commit < liveCommit[n] {
            fail("monotonic commit: node \(id) commit went from \(liveCommit[n]) to \(commit)")
        }
        liveCommit[n] = commit
        if synced {
            let durable = storage.currentHardState.commit
            if durable < durableCommit[n] {
                fail("monotonic commit: node \(id) durable commit went from \(durableCommit[n]) to \(durable)")
            }
            durableCommit[n] = durable
            durableHard[n] = storage.currentHardState
        }
        if !(core.appliedIndex <= commit && commit <= core.lastIndex) {
            fail("indexes: node \(id) has applied \(core.appliedIndex), commit \(commit), last \(core.lastIndex)")
        }
        let v = views[n]
        // Whatever a node commits and holds durably must agree with every other node's commit.
        // The durable log may still hold a suffix the node already replaced in memory (its disk
        // write is in progress); only an entry of the same term in both is the committed one.
        let k = min(commit, v.last)
        if k > v.base, let h = v.hash(k), (try? core.term(at: k)) == v.term(k) {
            recordCommitted(k, h, by: n, what: "committed")
        }
        guard core.role == .leader else {
            leading[n] = nil
            return
        }
        if let other = leaderOfTerm[core.term], other != id {
            fail("election safety: nodes \(other) and \(id) are both leaders of term \(core.term)")
        }
        leaderOfTerm[core.term] = id
        if let (t, last, h) = leading[n], t == core.term {
            if v.hash(last) != h {
                fail("leader append-only: leader \(id) of term \(t) changed its log at or before index \(last)")
            }
        } else {
            // A new leader: it must hold every entry known committed (§5.4.1).
            let hc = highestKnownCommitted
            if hc > v.last {
                fail("leader completeness: leader \(id) of term \(core.term) ends at \(v.last) but \(hc) is committed")
            } else if let mine = v.hash(hc), committedHash[Int(hc.rawValue)] != 0, mine != committedHash[Int(hc.rawValue)] {
                fail("leader completeness: leader \(id) of term \(core.term) holds a different entry at committed index \(hc)")
            }
        }
        leading[n] = (core.term, v.last, v.hash(v.last) ?? 0)
    }
}
