import Raft

/// Simulated clients of a replicated key-value store running on a ``SimCluster``: they issue
/// gets (linearizable, lease and stale), puts, deletes and compare-and-swaps on any node, in
/// simulated time, under whatever faults the cluster injects, and record every linearizable
/// operation in a ``LinearizabilityHistory`` for the ``LinearizabilityChecker``.
///
/// The store is the log itself: commands are entries, and the state after index `i` is every
/// committed command up to `i` applied in order (each node's own state machine is checked
/// against the same log by the ``SafetyChecker``). A write completes when its entry commits in
/// the term it was appended in (the earliest instant a real node could answer it), with the
/// result its command has at that index; one whose entry is overwritten or whose answer never
/// comes is recorded as unknown. A get asks the node for a read index
/// (``RaftCore/readIndex(context:confirmation:)``) and completes once that node's state machine
/// has applied it, with the value at the node's applied index; a get whose node crashes or
/// that is not confirmed in time has no effect and is left out. Stale gets are not
/// linearizable by design and are only checked never to go backwards on one node while it runs.
///
/// Time is an event counter: each invocation and completion gets the next value, so the order
/// the checker sees is the order things happened in the simulation.
public final class SimKVClients {
    /// The model the history is checked against.
    public typealias Model = KeyValueModel<String, String>

    /// What the clients do.
    public struct Options: Sendable {
        /// Concurrent clients, each with at most one operation in flight.
        public var clients = 6
        /// Keys they share (few keys: many conflicts).
        public var keys = 3
        /// Chance per round that an idle client starts an operation.
        public var operationRate = 0.5
        /// Rounds after which an operation without an answer is given up (unknown for a write,
        /// left out for a get).
        public var timeoutRounds = 60
        /// Whether gets may ask for ``ReadConfirmation/lease`` (needs
        /// ``RaftConfiguration/readLease`` on the cluster).
        public var leaseReads = false
        /// Whether clients also issue stale gets (checked for monotonicity only).
        public var staleReads = true

        /// Default options.
        public init() {}
    }

    enum Pending {
        case write(Model.Input, call: Int64, receipt: ProposalReceipt?, deadline: Int)
        case read(key: String, node: NodeID, incarnation: Int, context: [UInt8], readIndex: LogIndex?, call: Int64, deadline: Int)
    }

    struct Invoked {
        var client: Int
        var input: Model.Input
        var time: Int64
    }

    let cluster: SimCluster
    let options: Options
    var rng: SeededGenerator
    var clients: [Pending?]
    var invocations: [Invoked] = []
    var now: Int64 = 0
    var nextValue = 0
    var nextContext: UInt64 = 0
    /// The committed log as the nodes report it, and each write's result at its index.
    var committed: [LogIndex: LogEntry] = [:]
    var committedThrough: LogIndex = .zero
    var results: [LogIndex: Model.Output] = [:]
    /// Each key's values after the commands that changed it, in index order.
    var changes: [String: [(index: LogIndex, value: String?)]] = [:]
    /// Per node, the restart count and applied index its last stale get saw (a restart may
    /// begin again from an older snapshot).
    var staleSeen: [NodeID: (incarnation: Int, applied: LogIndex)] = [:]

    /// The history of linearizable operations so far.
    public private(set) var history = LinearizabilityHistory<Model.Input, Model.Output>()
    /// What went wrong outside the history (a stale read going backwards, a node reporting a
    /// different entry at a committed index).
    public private(set) var violations: [String] = []
    /// Operations completed, by kind, for the caller's statistics.
    public private(set) var completedWrites = 0
    /// Linearizable (and lease) gets completed.
    public private(set) var completedReads = 0
    /// Stale gets served.
    public private(set) var completedStaleReads = 0

    /// Attaches clients to `cluster` (chaining its ``SimCluster/onReady`` hook).
    public init(cluster: SimCluster, seed: UInt64, options: Options = Options()) {
        self.cluster = cluster
        self.options = options
        rng = SeededGenerator(seed: seed ^ 0xC11E_17)
        clients = Array(repeating: nil, count: options.clients)
        let previous = cluster.onReady
        cluster.onReady = { [unowned self] id, rd in
            previous?(id, rd)
            self.observe(id, rd)
        }
        let previousInterim = cluster.onInterimReads
        cluster.onInterimReads = { [unowned self] id, states in
            previousInterim?(id, states)
            self.confirm(states, on: id)
        }
        if cluster.userMachines != nil {
            violations.append("SimKVClients proposes its own key-value commands: attach it to a cluster running the hash machine, not a user's state machine")
        }
        // The store is the committed log from index 1: clients that missed part of it would
        // record every answer against the wrong state.
        if let node = cluster.ids.first(where: { (cluster.core($0)?.commitIndex ?? .zero) > .zero }) {
            violations.append("SimKVClients attached after node \(node) committed entries: attach the clients before the cluster commits anything")
        }
    }

    // MARK: The store

    static func encode(_ input: Model.Input) -> [UInt8] {
        let sep = "\u{1}"
        switch input {
        case .put(let k, let v): return Array("P\(sep)\(k)\(sep)\(v)".utf8)
        case .delete(let k): return Array("D\(sep)\(k)".utf8)
        case .compareAndSwap(let k, let expected, let new): return Array("C\(sep)\(k)\(sep)\(expected ?? "\u{0}")\(sep)\(new)".utf8)
        case .get(let k): return Array("G\(sep)\(k)".utf8)
        }
    }

    static func decode(_ data: [UInt8]) -> Model.Input? {
        let parts = String(decoding: data, as: UTF8.self).split(separator: "\u{1}", omittingEmptySubsequences: false).map(String.init)
        switch (parts.first, parts.count) {
        case ("P", 3): return .put(key: parts[1], value: parts[2])
        case ("D", 2): return .delete(key: parts[1])
        case ("C", 4): return .compareAndSwap(key: parts[1], expected: parts[2] == "\u{0}" ? nil : parts[2], new: parts[3])
        default: return nil
        }
    }

    func value(of key: String, at index: LogIndex) -> String? {
        guard let list = changes[key] else { return nil }
        var lo = 0
        var hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].index <= index { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : list[lo - 1].value
    }

    /// Extends the committed log with entries a node reports committed, in index order.
    func learnCommitted(_ entries: [LogEntry], from node: NodeID) {
        for e in entries {
            if let known = committed[e.index] {
                if known != e { violations.append("node \(node) committed \(e.index)/\(e.term) but \(known.index)/\(known.term) was committed there") }
                continue
            }
            committed[e.index] = e
        }
        while let e = committed[committedThrough + 1] {
            committedThrough = e.index
            guard e.kind == .command, let input = Self.decode(e.data) else { continue }
            let key = input.key
            let current = value(of: key, at: e.index)
            switch input {
            case .put(_, let v):
                results[e.index] = .ok
                changes[key, default: []].append((e.index, v))
            case .delete:
                results[e.index] = .ok
                changes[key, default: []].append((e.index, nil))
            case .compareAndSwap(_, let expected, let new):
                let swapped = current == expected
                results[e.index] = .swapped(swapped)
                if swapped { changes[key, default: []].append((e.index, new)) }
            case .get:
                break
            }
        }
    }

    /// Called with every batch a node hands out, before the node applies it: the moment a
    /// ``RaftNode`` serves the reads it confirms (with the state it holds then) and those whose
    /// index the previous batch applied.
    func observe(_ id: NodeID, _ rd: Ready) {
        if !rd.committedEntries.isEmpty { learnCommitted(rd.committedEntries, from: id) }
        confirm(rd.readStates, on: id)
    }

    /// Records the read indexes node `id` confirmed, and completes the reads on it whose index
    /// its state machine holds.
    func confirm(_ states: [ReadState], on id: NodeID) {
        for s in states {
            for (c, p) in clients.enumerated() {
                guard case .read(let key, let node, let incarnation, let context, nil, let call, let deadline) = p, node == id, context == s.context else { continue }
                clients[c] = .read(key: key, node: node, incarnation: incarnation, context: context, readIndex: s.index, call: call, deadline: deadline)
            }
        }
        for c in clients.indices {
            if case .read(_, let node, _, _, _?, _, _)? = clients[c], node == id { progress(c) }
        }
    }

    // MARK: Driving

    func tick() -> Int64 {
        now += 1
        return now
    }

    /// Completes what can complete, gives up what timed out, and starts new operations. Call
    /// after every ``SimCluster/runRound()``.
    public func runRound() {
        for c in clients.indices { progress(c) }
        for c in clients.indices where clients[c] == nil && chance(options.operationRate) { start(c) }
    }

    func chance(_ p: Double) -> Bool { Double(rng.next() % 1_000_000) / 1_000_000 < p }

    func record(_ c: Int, _ input: Model.Input, call: Int64, _ outcome: LinearizabilityHistory<Model.Input, Model.Output>.Outcome) {
        do { _ = try history.append(client: c, input, invokedAt: call, outcome: outcome) } catch {
            violations.append("history: \(error)")
        }
    }

    func progress(_ c: Int) {
        guard let p = clients[c] else { return }
        switch p {
        case .write(let input, let call, let receipt, let deadline):
            if let r = receipt, committedThrough >= r.lastIndex, let e = committed[r.lastIndex] {
                clients[c] = nil
                if e.term == r.term, let result = results[r.lastIndex] {
                    record(c, input, call: call, .returned(result, at: tick()))
                    completedWrites += 1
                } else {
                    // Another leader's entry took the index: this one can never commit.
                    record(c, input, call: call, .unknown)
                }
            } else if cluster.round >= deadline {
                clients[c] = nil
                record(c, input, call: call, .unknown)
            }
        case .read(let key, let node, let incarnation, _, let readIndex, let call, let deadline):
            guard cluster.isUp(node), cluster.restarts[cluster.ids.firstIndex(of: node)!] == incarnation else {
                // The node crashed: its pending reads are gone, and a get changes nothing.
                clients[c] = nil
                return
            }
            let applied = cluster.machine(node).applied
            if let readIndex, applied >= readIndex {
                clients[c] = nil
                record(c, .get(key: key), call: call, .returned(.value(value(of: key, at: applied)), at: tick()))
                completedReads += 1
            } else if cluster.round >= deadline {
                clients[c] = nil
            }
        }
    }

    func start(_ c: Int) {
        let up = cluster.ids.filter { cluster.isUp($0) }
        guard !up.isEmpty else { return }
        let node = up[Int(rng.next() % UInt64(up.count))]
        let key = "k\(rng.next() % UInt64(options.keys))"
        let roll = rng.next() % 100
        let deadline = cluster.round + options.timeoutRounds
        if roll < 45 {
            if options.staleReads && roll < 10 {
                staleRead(node: node, key: key)
                return
            }
            nextContext += 1
            let context = withUnsafeBytes(of: nextContext.bigEndian) { Array($0) }
            let confirmation: ReadConfirmation = options.leaseReads && rng.next() % 2 == 0 ? .lease : .quorum
            let call = tick()
            clients[c] = .read(
                key: key, node: node, incarnation: incarnation(node), context: context, readIndex: nil, call: call, deadline: deadline)
            // A node whose disk write is in flight takes the read without storage if it can.
            if cluster.readIndexWhileHeld(node, context: context, confirmation: confirmation) { return }
            do {
                _ = try cluster.withCore(node) { (core: inout RaftCore) throws(RaftError) in
                    try core.readIndex(context: context, confirmation: confirmation)
                }
            } catch {
                // Refused (no leader known): nothing happened.
                if case .read(_, _, _, _, nil, _, _)? = clients[c] { clients[c] = nil }
            }
            return
        }
        nextValue += 1
        let value = "v\(nextValue)"
        let input: Model.Input
        switch roll {
        case 45..<75: input = .put(key: key, value: value)
        case 75..<90:
            let expected = chance(0.3) ? nil : cluster.machine(node).applied > .zero ? self.value(of: key, at: cluster.machine(node).applied) : nil
            input = .compareAndSwap(key: key, expected: expected, new: value)
        default: input = .delete(key: key)
        }
        let call = tick()
        // A follower refuses with the leader's id; the client follows the hint once, as a
        // client following a redirect does.
        var target = node
        for _ in 0..<2 {
            do {
                let receipt = try cluster.propose(target, [Self.encode(input)])
                clients[c] = .write(input, call: call, receipt: receipt, deadline: deadline)
                return
            } catch {
                // Refused: it never entered the log.
                guard error.code == .notLeader, let hint = error.leaderHint, hint != target, cluster.isUp(hint) else { return }
                target = hint
            }
        }
    }

    func incarnation(_ node: NodeID) -> Int { cluster.restarts[cluster.ids.firstIndex(of: node)!] }

    func staleRead(node: NodeID, key: String) {
        let applied = cluster.machine(node).applied
        let now = incarnation(node)
        if let seen = staleSeen[node], seen.incarnation == now, applied < seen.applied {
            violations.append("a stale read on node \(node) went backwards: applied \(applied) after \(seen.applied)")
        }
        staleSeen[node] = (now, applied)
        completedStaleReads += 1
    }

    /// Gives up every operation still in flight (writes become unknown).
    public func finish() {
        for (c, p) in clients.enumerated() {
            if case .write(let input, let call, _, _)? = p { record(c, input, call: call, .unknown) }
            clients[c] = nil
        }
    }
}

/// What a simulation with clients did.
public struct SimClientsStats: Sendable, Hashable {
    /// Operations in the checked history (unknown writes included).
    public var operations: Int
    /// Writes and linearizable gets that returned.
    public var completedWrites: Int
    public var completedReads: Int
    /// Stale gets served.
    public var staleReads: Int
}

extension SimCluster {
    /// Runs one seeded simulation with ``SimKVClients``: `rounds` rounds of random faults with
    /// the clients issuing operations on every node, safety checked after every batch, then a
    /// liveness phase; at the end the history of linearizable operations is checked with
    /// the ``LinearizabilityChecker``. Throws the first failure with its seed (a
    /// non-linearizable history throws with the checker's explanation).
    ///
    /// With `clients.leaseReads`, each node's ticks run at a rate drawn from
    /// `1 / (1 + drift) ... 1` (`drift` the cluster's ``ReadLease/maxClockDrift``), so clocks drift
    /// apart up to the edge of the lease's documented bound.
    ///
    /// - Parameter checkerSteps: the ``LinearizabilityChecker``'s budget; a history it cannot
    ///   decide within it fails the seed (``LinearizabilityResult/unknown(_:)``).
    public static func simulateWithClients(
        seed: UInt64, nodes: Int, rounds: Int, faults: SimFaults = .all, clients: SimKVClients.Options = SimKVClients.Options(),
        livenessRounds: Int = 400, checkerSteps: Int = 20_000_000, configure: (inout RaftConfiguration) -> Void = { _ in }
    ) throws -> SimClientsStats {
        var lease: ReadLease?
        let cluster = try SimCluster(nodes: nodes, seed: seed, faults: faults, configure: { c in
            configure(&c)
            lease = c.readLease
        })
        // The clients write through the log; the random schedule's own proposals stay too.
        let workload = SimKVClients(cluster: cluster, seed: seed, options: clients)
        if clients.leaseReads, let lease {
            var rng = SeededGenerator(seed: seed ^ 0xD21F7)
            // Rates in 1/(1 + drift) ... 1: any two differ by a factor within 1 ± drift, up to the edge.
            let slowest = 1 / (1 + lease.maxClockDrift)
            cluster.tickRates = cluster.ids.map { _ in slowest + (1 - slowest) * Double(rng.next() % 1001) / 1000 }
        }
        func failure(_ extra: [String]) -> SimulationFailure {
            SimulationFailure(
                seed: seed, nodes: nodes, round: cluster.round, violations: cluster.checker.violations + workload.violations + extra,
                trace: cluster.trace)
        }
        for _ in 0..<rounds {
            cluster.runRound()
            workload.runRound()
            if !cluster.checker.violations.isEmpty || !workload.violations.isEmpty { throw failure([]) }
        }
        cluster.tickRates = nil
        guard cluster.settle(maxRounds: livenessRounds) != nil else {
            throw failure(["liveness: no leader committed a new command on every node within \(livenessRounds) rounds after healing"])
        }
        workload.runRound()
        workload.finish()
        // Bounded: rejecting a history is exponential in the unknown-outcome writes on one key,
        // and a check that cannot decide must fail the seed, not hang the run.
        let result = LinearizabilityChecker(model: SimKVClients.Model(), budget: .steps(checkerSteps)).check(workload.history)
        if !result.isLinearizable { throw failure(["linearizability: \(result)"]) }
        return SimClientsStats(
            operations: workload.history.count, completedWrites: workload.completedWrites, completedReads: workload.completedReads,
            staleReads: workload.completedStaleReads)
    }
}
