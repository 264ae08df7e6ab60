@testable import Raft

// Shared helpers for unit tests that drive single `RaftCore`s (or a handful of them) by hand.

/// The configuration of the paper's §5 algorithm: no PreVote, no CheckQuorum, one-tick
/// heartbeats and an election timeout drawn from `10 ..< 20` ticks.
func paperConfig(_ id: NodeID, seed: UInt64 = 1, _ configure: (inout RaftConfiguration) -> Void = { _ in }) -> RaftConfiguration {
    var c = RaftConfiguration(id: id)
    c.preVote = false
    c.checkQuorum = false
    c.electionTicks = 10
    c.heartbeatTicks = 1
    c.randomSeed = seed
    configure(&c)
    return c
}

/// Entries with the given terms at indexes `first`, `first + 1`, ...; command payloads are
/// `[index]` so two entries of one term at different indexes still differ.
func entries(_ terms: [Term], from first: LogIndex = 1) -> [LogEntry] {
    terms.enumerated().map { i, t in
        let index = first.advanced(by: i)
        return LogEntry(term: t, index: index, kind: .command, data: [UInt8(truncatingIfNeeded: index.rawValue)])
    }
}

/// Shorthand for term lists: `terms(1, 1, 2)`.
func terms(_ values: UInt64...) -> [Term] { values.map { Term(rawValue: $0) } }

/// What one or more `ready()` batches asked for.
struct Drained {
    /// Messages that could be sent at once (``Ready/messages``), in order.
    var immediate: [Message] = []
    /// Messages to send after persisting (``Ready/messagesAfterPersist``), in order.
    var afterPersist: [Message] = []
    /// Entries persisted, batch after batch.
    var persisted: [[LogEntry]] = []
    /// Committed entries handed out for application, batch after batch.
    var committed: [[LogEntry]] = []
    /// Hard states persisted, in order.
    var hardStates: [HardState] = []
    /// Soft states reported, in order.
    var softStates: [SoftState] = []
    /// Read states handed out, in order.
    var readStates: [ReadState] = []

    /// Every message, immediate ones first.
    var messages: [Message] { immediate + afterPersist }
    /// Committed entries of every batch, in order.
    var applied: [LogEntry] { committed.flatMap { $0 } }

    /// Messages to `peer`.
    func messages(to peer: NodeID) -> [Message] { messages.filter { $0.to == peer } }
}

/// One node under test: its core and its "disk".
final class TestNode {
    var core: RaftCore
    let storage: MemoryLogStorage
    /// Every committed entry this node applied, in order.
    private(set) var applied: [LogEntry] = []

    /// Creates a node whose disk holds `log` (entries from index 1) and `hardState`.
    init(
        _ id: NodeID, voters: [NodeID] = [1, 2, 3], log: [LogEntry] = [], hardState: HardState = HardState(),
        config: RaftConfiguration? = nil
    ) throws {
        storage = MemoryLogStorage(voters: voters)
        try storage.append(log)
        storage.setHardState(hardState)
        core = try RaftCore(configuration: config ?? paperConfig(id), storage: storage)
    }

    var id: NodeID { core.id }

    /// Runs `ready()` / persist / `advance()` until the core has nothing left to hand out, as a
    /// shell would (messages are returned, not sent).
    @discardableResult
    func drain() throws -> Drained {
        var d = Drained()
        while core.hasReady {
            let rd = try core.ready()
            d.immediate += rd.messages
            if let s = rd.snapshot { try storage.applySnapshot(s.inMemorySnapshot()) }
            if !rd.entries.isEmpty {
                try storage.append(rd.entries)
                d.persisted.append(rd.entries)
            }
            if let hs = rd.hardState {
                storage.setHardState(hs)
                d.hardStates.append(hs)
            }
            if let ss = rd.softState { d.softStates.append(ss) }
            d.readStates += rd.readStates
            d.afterPersist += rd.messagesAfterPersist
            if !rd.committedEntries.isEmpty {
                d.committed.append(rd.committedEntries)
                applied += rd.committedEntries
            }
            try core.advance(rd)
        }
        return d
    }

    /// Steps `m` into the core and drains what it produced.
    @discardableResult
    func receive(_ m: Message) throws -> Drained {
        try core.step(m)
        return try drain()
    }

    /// The terms of every entry the core holds, from index 1 (or the first index).
    var logTerms: [Term] { get throws { try termsOf(core) } }

    /// The terms of every entry on disk.
    var storedTerms: [Term] {
        guard storage.lastIndex() >= storage.firstIndex() else { return [] }
        return ((try? storage.entries(in: storage.firstIndex()..<storage.lastIndex() + 1, maxBytes: .max)) ?? []).map(\.term)
    }

    /// Every entry the core holds.
    var logEntries: [LogEntry] {
        let c = core
        guard c.lastIndex >= c.firstIndex else { return [] }
        return (try? c.log.slice(c.firstIndex, c.lastIndex + 1, maxBytes: .max)) ?? []
    }
}

/// The terms of the entries `core` holds, first index to last.
func termsOf(_ core: RaftCore) throws -> [Term] {
    guard core.lastIndex >= core.firstIndex else { return [] }
    return try (core.firstIndex...core.lastIndex).map { try core.term(at: $0) ?? .zero }
}

// MARK: Messages

func appendMsg(
    from: NodeID, to: NodeID, term: Term, prev: (index: LogIndex, term: Term), entries: [LogEntry] = [],
    commit: LogIndex = .zero
) -> Message {
    Message(
        from: from, to: to, term: term,
        kind: .appendEntries(AppendEntries(prevLogIndex: prev.index, prevLogTerm: prev.term, entries: entries, leaderCommit: commit)))
}

func appendAck(from: NodeID, to: NodeID, term: Term, index: LogIndex) -> Message {
    Message(from: from, to: to, term: term, kind: .appendEntriesResponse(AppendEntriesResponse(index: index)))
}

func heartbeatMsg(from: NodeID, to: NodeID, term: Term, commit: LogIndex = .zero) -> Message {
    Message(from: from, to: to, term: term, kind: .heartbeat(Heartbeat(commit: commit)))
}

func voteRequest(from: NodeID, to: NodeID, term: Term, lastIndex: LogIndex = .zero, lastTerm: Term = .zero) -> Message {
    Message(from: from, to: to, term: term, kind: .requestVote(RequestVote(lastLogIndex: lastIndex, lastLogTerm: lastTerm)))
}

func voteResponse(from: NodeID, to: NodeID, term: Term, granted: Bool) -> Message {
    Message(from: from, to: to, term: term, kind: .requestVoteResponse(RequestVoteResponse(granted: granted)))
}

// MARK: Message inspection

extension Message {
    var appendEntries: AppendEntries? {
        if case .appendEntries(let a) = kind { return a }
        return nil
    }
    var appendResponse: AppendEntriesResponse? {
        if case .appendEntriesResponse(let r) = kind { return r }
        return nil
    }
    var heartbeat: Heartbeat? {
        if case .heartbeat(let h) = kind { return h }
        return nil
    }
    var voteRequest: RequestVote? {
        if case .requestVote(let r) = kind { return r }
        return nil
    }
    var preVoteRequest: RequestVote? {
        if case .preVote(let r) = kind { return r }
        return nil
    }
    /// Whether a (real, not pre-) vote was granted, if this is a vote answer.
    var voteGranted: Bool? {
        if case .requestVoteResponse(let r) = kind { return r.granted }
        return nil
    }
    var preVoteGranted: Bool? {
        if case .preVoteResponse(let r) = kind { return r.granted }
        return nil
    }
}

// MARK: Building states

/// Makes `node` leader of the next term: it campaigns and receives granted votes from just
/// enough peers (by default the lowest other ids), then drains. Returns what the drains after
/// the campaign produced (the new leader's first appends among them).
@discardableResult
func elect(_ node: TestNode, votesFrom: [NodeID]? = nil) throws -> Drained {
    try node.core.campaign()
    try node.drain()
    let term = node.core.term
    let peers = votesFrom ?? Array(node.core.voters.filter { $0 != node.id }.prefix(node.core.voters.count / 2))
    var out = Drained()
    for p in peers {
        let d = try node.receive(voteResponse(from: p, to: node.id, term: term, granted: true))
        out.immediate += d.immediate
        out.afterPersist += d.afterPersist
        out.persisted += d.persisted
        out.committed += d.committed
        out.hardStates += d.hardStates
        out.softStates += d.softStates
    }
    return out
}

/// A leader of term 1 of a cluster of `voters` whose every follower acknowledged its no-op
/// (index 1), so that it committed it and replicates in pipelined mode.
func stableLeader(_ id: NodeID = 1, voters: [NodeID] = [1, 2, 3], configure: (inout RaftConfiguration) -> Void = { _ in }) throws
    -> TestNode
{
    let node = try TestNode(id, voters: voters, config: paperConfig(id, configure))
    try elect(node)
    for p in voters where p != id {
        try node.receive(appendAck(from: p, to: id, term: node.core.term, index: node.core.lastIndex))
    }
    return node
}

// MARK: A tiny network

/// A few ``TestNode``s joined by a FIFO network. Messages to ids without a node are lost, as
/// are those `drop` matches.
final class TestNet {
    var nodes: [NodeID: TestNode] = [:]
    /// Messages sent and not yet delivered.
    var inFlight: [Message] = []
    /// Every message delivered so far, in order.
    private(set) var delivered: [Message] = []
    /// Messages matching this are lost in transit.
    var drop: (Message) -> Bool = { _ in false }

    init(_ nodes: [TestNode]) {
        for n in nodes { self.nodes[n.id] = n }
    }

    subscript(id: NodeID) -> TestNode { nodes[id]! }

    /// Drains every node (in id order) into the network.
    func flush() throws {
        for id in nodes.keys.sorted() { inFlight += try nodes[id]!.drain().messages }
    }

    /// Delivers the messages in flight now (not those they cause); returns them.
    @discardableResult
    func deliverRound() throws -> [Message] {
        try flush()
        let batch = inFlight
        inFlight.removeAll()
        var done: [Message] = []
        for m in batch {
            guard !drop(m), let n = nodes[m.to] else { continue }
            try n.core.step(m)
            delivered.append(m)
            done.append(m)
            inFlight += try n.drain().messages
        }
        return done
    }

    /// Delivers until nothing is in flight.
    func stabilize(maxRounds: Int = 1000) throws {
        for _ in 0..<maxRounds {
            try flush()
            if inFlight.isEmpty { return }
            try deliverRound()
        }
    }
}

/// Three cores (ids 1, 2, 3) with CheckQuorum and PreVote, `configure` applied to each; node 1
/// leads and every follower caught up.
func electedTrio(_ configure: (inout RaftConfiguration) -> Void = { _ in }) throws -> TestNet {
    let nodes = try ([1, 2, 3] as [NodeID]).map { id in
        try TestNode(id, config: paperConfig(id) { c in
            c.checkQuorum = true
            c.preVote = true
            configure(&c)
        })
    }
    let net = TestNet(nodes)
    try net[1].core.campaign()
    try net.stabilize()
    guard net[1].core.role == .leader else { throw RaftError(.timeout, "node 1 did not win its election") }
    return net
}

