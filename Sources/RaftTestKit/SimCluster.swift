import Raft

/// Which faults a simulated network and its nodes suffer, as per-round probabilities.
public struct SimFaults: Sendable, Hashable {
    /// Chance that a message is lost.
    public var dropRate: Double = 0
    /// Chance that a message is delivered twice.
    public var duplicateRate: Double = 0
    /// Messages are delayed by 0...maxDelay rounds; anything above zero reorders them.
    public var maxDelay: Int = 0
    /// Chance per round that the partition changes (split or heal).
    public var partitionRate: Double = 0
    /// Chance per round that a running node crashes, losing everything not yet durable.
    public var crashRate: Double = 0
    /// Chance per round that each crashed node restarts.
    public var restartRate: Double = 0.2
    /// Chance per round that each node snapshots and compacts its log.
    public var compactRate: Double = 0
    /// Chance per round that a node's disk stalls for the rest of the round: its batches wait,
    /// and a crash in that window loses whatever they had not persisted.
    public var stallRate: Double = 0
    /// Chance per round that a client proposes at a random node.
    public var proposeRate: Double = 0.3
    /// Chance per round that the leader is asked for a random membership change (a learner or
    /// voter added, a learner promoted, a voter demoted, a member removed, a voter replaced
    /// through joint consensus, the leader itself among them), or to leave a joint membership
    /// it was told to leave by hand. Use a cluster with spare nodes (``SimCluster/init(nodes:voters:seed:faults:configure:disk:)``).
    public var membershipRate: Double = 0
    /// Chance per round that the leader is asked to hand leadership to a random other voter.
    public var transferRate: Double = 0

    /// A perfect network with no crashes.
    public static let none = SimFaults()

    /// Every fault on.
    public static let all = SimFaults(
        dropRate: 0.05, duplicateRate: 0.03, maxDelay: 3, partitionRate: 0.02, crashRate: 0.01,
        restartRate: 0.15, compactRate: 0.04, stallRate: 0.1, proposeRate: 0.4)

    /// Every fault of ``all`` plus membership changes and leadership transfers.
    public static let membership: SimFaults = {
        var f = SimFaults.all
        f.membershipRate = 0.05
        f.transferRate = 0.01
        return f
    }()

    /// Every fault on, with frequent leader changes: short partitions and many crashes, the
    /// conditions under which committing an older term's entry by counting would go wrong
    /// (Raft paper figure 8).
    public static let churn = SimFaults(
        dropRate: 0.1, duplicateRate: 0.05, maxDelay: 5, partitionRate: 0.08, crashRate: 0.05,
        restartRate: 0.3, compactRate: 0.04, stallRate: 0.2, proposeRate: 0.6)

    /// Creates a fault profile; every fault is off unless set.
    public init(
        dropRate: Double = 0, duplicateRate: Double = 0, maxDelay: Int = 0, partitionRate: Double = 0,
        crashRate: Double = 0, restartRate: Double = 0.2, compactRate: Double = 0, stallRate: Double = 0,
        proposeRate: Double = 0.3
    ) {
        self.stallRate = stallRate
        self.dropRate = dropRate
        self.duplicateRate = duplicateRate
        self.maxDelay = maxDelay
        self.partitionRate = partitionRate
        self.crashRate = crashRate
        self.restartRate = restartRate
        self.compactRate = compactRate
        self.proposeRate = proposeRate
    }
}

/// A cluster of ``RaftCore``s over a simulated, seeded network, with crash-restart.
///
/// Each node has a ``MemoryLogStorage`` standing for its disk: a crash throws away the core (its
/// memory, including whatever a pending ``Ready`` had not yet persisted) and keeps the storage.
/// Every batch a node handles is followed by the ``SafetyChecker``. Every node runs the hash
/// machine (``SimStateMachine``); a cluster can also run your own state machine on every node
/// (``init(nodes:seed:faults:machine:snapshotSaveRounds:configure:disk:)``,
/// ``check(_:seeds:options:)``).
///
/// The cluster is driven either at random (``runRound()``, used by simulations) or step by step
/// (``deliverAll()``, ``tick(_:)``, ``stabilize()``, used by scenario files). Same seed, same run.
public final class SimCluster {
    /// Node ids, in cluster order (1...n).
    public let ids: [NodeID]
    /// The fault profile used by ``runRound()``.
    public var faults: SimFaults
    /// The safety checker run after every batch.
    public let checker: SafetyChecker
    /// Rounds elapsed.
    public internal(set) var round = 0
    /// A bounded trace of recent events, printed with a failure.
    public private(set) var trace: [String] = []
    /// Called for every message as it is delivered (scenario output).
    public var onDeliver: ((Message) -> Void)?
    /// Called for every node batch (scenario output).
    public var onReady: ((NodeID, Ready) -> Void)?
    /// Called with the reads a node confirmed while its batch was held (being persisted), in
    /// a step taken without storage (``RaftCore/stepWithoutStorage(_:)``), as a ``RaftNode``
    /// serves them during its disk write.
    public var onInterimReads: ((NodeID, [ReadState]) -> Void)?
    /// Number of commands proposed by ``runRound()`` so far.
    public internal(set) var proposed = 0
    /// Membership changes a leader accepted (``changeMembership(_:_:mode:)``).
    public internal(set) var membershipChanges = 0
    /// Leadership transfers a leader started (``transferLeadership(_:to:)``).
    public internal(set) var transfers = 0

    var rng: SeededGenerator
    var configs: [RaftConfiguration]
    /// Each node's storage (its disk), in cluster order.
    public private(set) var storages: [any WritableLogStorage]
    var disks: [any SimDisk]
    let makeDisk: ([NodeID]) -> any SimDisk
    var cores: [RaftCore?]
    /// Each node's state machine (reset from the latest snapshot on restart).
    public private(set) var machines: [SimStateMachine]
    var queue: [(deliverAt: Int, msg: Message)] = []
    /// Snapshot transfers finished or lost, to report to their senders as a transport would.
    var snapshotReports: [(leader: NodeID, follower: NodeID, failed: Bool)] = []
    /// partitionGroup[i]: nodes talk only within a group.
    var partitionGroup: [Int]
    /// Entries kept behind a compaction point so slightly slow followers catch up from the log.
    public var compactionTrail: UInt64 = 5
    /// Each node's tick rate for ``runRound()``, as a fraction of one tick per round (clock
    /// drift); `nil` ticks every node every round.
    public var tickRates: [Double]?
    var tickPhase: [Double]
    /// How many times each node was restarted (crash-restarts and wipes), in cluster order.
    public private(set) var restarts: [Int]
    /// The voters the first nodes were bootstrapped with; the other nodes start empty.
    let bootstrapVoters: [NodeID]
    /// The user's state machine every node runs beside the hash machine, if the cluster was
    /// made with one (`SimCluster+StateMachine.swift`).
    var userMachines: (any SimMachineDriver)?

    /// Creates a cluster of `nodes` nodes with ids `1...nodes`; the first `voters` of them (all by
    /// default) are bootstrapped as the voters, the others start with an empty membership and
    /// wait to be added (``changeMembership(_:_:mode:)``).
    ///
    /// - Parameter configure: adjusts each node's configuration (the id and seed are set already).
    /// - Parameter disk: makes each node's disk from the voter list; ``MemoryDisk`` by default,
    ///   ``FileDisk`` to run the real file storage under power loss.
    public init(
        nodes: Int, voters: Int? = nil, seed: UInt64, faults: SimFaults = .none,
        configure: (inout RaftConfiguration) -> Void = { _ in }, disk: @escaping ([NodeID]) -> any SimDisk = { MemoryDisk(voters: $0) }
    ) throws(RaftError) {
        ids = (1...UInt64(nodes)).map { NodeID(rawValue: $0) }
        bootstrapVoters = Array(ids.prefix(voters ?? nodes))
        makeDisk = disk
        disks = []
        self.faults = faults
        rng = SeededGenerator(seed: seed)
        checker = SafetyChecker(ids: ids)
        configs = []
        storages = []
        cores = []
        machines = []
        partitionGroup = Array(repeating: 0, count: nodes)
        tickPhase = Array(repeating: 0, count: nodes)
        restarts = Array(repeating: 0, count: nodes)
        inProgress = Array(repeating: nil, count: nodes)
        unsyncedEntries = Array(repeating: [], count: nodes)
        for id in ids {
            var c = RaftConfiguration(id: id)
            c.randomSeed = seed
            configure(&c)
            c.id = id
            configs.append(c)
            let d = disk(bootstrap(id))
            disks.append(d)
            let s = try d.open()
            storages.append(s)
            cores.append(try RaftCore(configuration: c, storage: s))
            machines.append(SimStateMachine())
        }
    }

    func slot(_ id: NodeID) -> Int { Int(id.rawValue) - 1 }

    func note(_ s: String) {
        trace.append("[\(round)] " + s)
        if trace.count > 60 { trace.removeFirst(trace.count - 60) }
    }

    // MARK: Inspection

    /// The running core of `id`, or `nil` while it is down.
    public func core(_ id: NodeID) -> RaftCore? { cores[slot(id)] }

    /// Whether `id` is running.
    public func isUp(_ id: NodeID) -> Bool { cores[slot(id)] != nil }

    /// The state machine of `id`.
    public func machine(_ id: NodeID) -> SimStateMachine { machines[slot(id)] }

    /// The storage (disk) of `id`.
    public func storage(_ id: NodeID) -> any WritableLogStorage { storages[slot(id)] }

    /// The running leader with the highest term, if any.
    public var leader: NodeID? {
        var best: (NodeID, Term)?
        for (i, c) in cores.enumerated() {
            guard let c, c.role == .leader else { continue }
            if best == nil || c.term > best!.1 { best = (ids[i], c.term) }
        }
        return best?.0
    }

    /// Messages in flight.
    public var pendingMessages: [Message] { queue.map(\.msg) }

    // MARK: Driving one node

    /// Runs `body` on the core of `id` and then handles whatever it produced. No-op while down.
    public func withCore<T>(_ id: NodeID, _ body: (inout RaftCore) throws(RaftError) -> T) throws(RaftError) -> T? {
        let i = slot(id)
        guard var c = cores[i] else { return nil }
        cores[i] = nil
        let before = CommitWatch(c)
        defer {
            checkCommitQuorum(i, before, c)
            cores[i] = c
            process(i)
        }
        return try body(&c)
    }

    /// Ticks `id` once. A storage failure is a violation (the simulated storages never fail a
    /// read).
    public func tick(_ id: NodeID) {
        do { _ = try withCore(id) { (c: inout RaftCore) throws(RaftError) in try c.tick() } } catch {
            checker.fail("storage: node \(id) failed a read while ticking: \(error)")
        }
    }

    /// Makes `id` start an election now; returns whether one started.
    @discardableResult
    public func campaign(_ id: NodeID) -> Bool {
        do { return try withCore(id) { (c: inout RaftCore) throws(RaftError) in try c.campaign() } ?? false } catch {
            checker.fail("storage: node \(id) failed a read while campaigning: \(error)")
            return false
        }
    }

    /// Proposes commands at `id`.
    @discardableResult
    public func propose(_ id: NodeID, _ commands: [[UInt8]]) throws(RaftError) -> ProposalReceipt? {
        guard let r = try withCore(id, { (c: inout RaftCore) throws(RaftError) in try c.propose(commands: commands) }) else {
            return nil
        }
        return r
    }

    /// Nodes whose batches wait (a slow disk): a crash while waiting loses them.
    var held: Set<Int> = []
    /// Per node, a batch whose early messages were sent and whose disk write has not finished.
    var inProgress: [Ready?] = []
    /// Per node, entries written without a sync before a crash (a power loss may tear them).
    var unsyncedEntries: [[LogEntry]] = []

    /// Stops `id` from handling its batches until ``release(_:)``, as if its disk stalled.
    /// A ``crash(_:phase:)`` meanwhile loses everything not yet persisted.
    public func hold(_ id: NodeID) { held.insert(slot(id)) }

    /// Lets `id` handle its pending batches again.
    public func release(_ id: NodeID) {
        held.remove(slot(id))
        process(slot(id))
    }

    /// Handles every pending batch of node `i`: persist, send, apply, check.
    func process(_ i: Int) {
        while var c = cores[i] {
            if inProgress[i] == nil {
                guard c.hasReady else { break }
                let rd: Ready
                do { rd = try c.ready() } catch {
                    checker.fail("storage: node \(ids[i]) failed a read: \(error)")
                    cores[i] = c
                    break
                }
                cores[i] = c
                // A leader may send (its appends go out before its disk write) and fall before
                // this batch completes: record it now.
                checker.observeRole(i, core: c)
                onReady?(ids[i], rd)
                // Pipelining: the early messages leave before the disk write starts.
                for m in rd.messages { send(m) }
                inProgress[i] = rd
            }
            if held.contains(i) { break }
            let rd = inProgress[i]!
            inProgress[i] = nil
            persist(i, rd)
            for m in rd.messagesAfterPersist { send(m) }
            apply(i, rd)
            c = cores[i]!
            let before = CommitWatch(c)
            do { try c.advance(rd) } catch { checker.fail("storage: node \(ids[i]) failed a read: \(error)") }
            checkCommitQuorum(i, before, c)
            cores[i] = c
            checker.check(i, core: c, storage: storages[i], synced: rd.mustSync || !(storages[i] is FileLogStorage))
        }
        flushSnapshotReports()
    }

    /// Tells leaders how their snapshot transfers ended, as a real transport does.
    func flushSnapshotReports() {
        while !snapshotReports.isEmpty {
            let r = snapshotReports.removeFirst()
            _ = try? withCore(r.leader) { $0.reportSnapshot(to: r.follower, failed: r.failed) }
        }
    }

    func persist(_ i: Int, _ rd: Ready) {
        let s = storages[i]
        if let install = rd.snapshot {
            do {
                let snap = try install.inMemorySnapshot()
                try s.applySnapshot(snap)
                let sm = hashMachine(fromSnapshot: snap.data) ?? SimStateMachine()
                checker.snapshotInstalled(i, index: snap.metadata.index, term: snap.metadata.term, hash: sm.hash)
            } catch {
                checker.fail("storage: node \(ids[i]) could not install snapshot \(install.metadata.index): \(error)")
            }
        }
        if !rd.entries.isEmpty {
            do {
                try s.append(rd.entries)
                checker.entriesPersisted(i, rd.entries)
            } catch {
                checker.fail("storage: node \(ids[i]) could not append: \(error)")
            }
        }
        do {
            if let hs = rd.hardState { try s.setHardState(hs) }
            if rd.mustSync { try s.sync() }
        } catch {
            checker.fail("storage: node \(ids[i]) could not persist: \(error)")
        }
    }

    /// Writes a batch without syncing it (a crash in the middle of a disk write).
    func writeWithoutSync(_ i: Int, _ rd: Ready) {
        guard let s = storages[i] as? FileLogStorage, rd.snapshot == nil else { return }
        try? s.append(rd.entries)
        if let hs = rd.hardState { try? s.setHardState(hs) }
        try? s.writeBuffered()
        unsyncedEntries[i] = rd.entries
    }

    func apply(_ i: Int, _ rd: Ready) {
        if let snap = rd.snapshot {
            guard let bytes = try? snap.inMemorySnapshot().data, let sm = hashMachine(fromSnapshot: bytes) else {
                checker.fail("state machine: node \(ids[i]) received malformed snapshot data")
                return
            }
            if sm.applied != snap.metadata.index {
                checker.fail("snapshot: node \(ids[i]) snapshot at \(snap.metadata.index) holds state applied to \(sm.applied)")
            }
            machines[i] = sm
            checker.applied(i, sm)
            installInUserMachine(i, bytes, snap.metadata)
        }
        for e in rd.committedEntries {
            if e.index <= machines[i].applied { checker.fail("apply: node \(ids[i]) was given entry \(e.index) again (applied \(machines[i].applied))") }
            if !machines[i].apply(e) {
                checker.fail("apply: node \(ids[i]) was given entry \(e.index) after \(machines[i].applied): a gap")
                return
            }
            checker.applied(i, machines[i])
        }
        userMachines?.apply(i, rd.committedEntries[...])
    }

    // MARK: Network

    /// Whether `a` and `b` can currently talk.
    public func connected(_ a: NodeID, _ b: NodeID) -> Bool { partitionGroup[slot(a)] == partitionGroup[slot(b)] }

    func chance(_ p: Double) -> Bool { p > 0 && Double(rng.next() >> 11) * 0x1p-53 < p }

    func send(_ m: Message) {
        var isSnapshot = false
        if case .installSnapshot = m.kind { isSnapshot = true }
        guard connected(m.from, m.to), !chance(faults.dropRate) else {
            if isSnapshot { snapshotReports.append((m.from, m.to, true)) }
            return
        }
        let copies = chance(faults.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            let delay = faults.maxDelay > 0 ? Int(rng.next() % UInt64(faults.maxDelay + 1)) : 0
            queue.append((round + delay, m))
        }
    }

    /// Queues `m` for delivery as if a node had sent it (no faults applied): for duplicates
    /// and hand-made messages in tests.
    public func inject(_ m: Message) { queue.append((round, m)) }

    /// Delivers `m` if its sender and receiver can talk; a snapshot lost on the way is
    /// reported to its sender, as a transport would.
    func deliverIfConnected(_ m: Message) {
        if connected(m.from, m.to) {
            deliver(m)
        } else if case .installSnapshot = m.kind {
            snapshotReports.append((m.from, m.to, true))
            flushSnapshotReports()
        }
    }

    /// Delivers one message to its receiver and handles what it produced.
    public func deliver(_ m: Message) {
        onDeliver?(m)
        if case .installSnapshot = m.kind { snapshotReports.append((m.from, m.to, !isUp(m.to))) }
        if stepWhileHeld(m) { return }
        do {
            _ = try withCore(m.to) { (c: inout RaftCore) throws(RaftError) in try c.step(m) }
        } catch {
            checker.fail("step: node \(m.to) refused a message: \(error)")
        }
    }

    /// A node whose batch is held (its disk write in flight) first takes what of `m` needs no
    /// storage, as a ``RaftNode`` does during a write: what that produced is sent, and the reads
    /// it confirmed reported, at once. Returns whether `m` was handled completely; if not, it is
    /// stepped as usual (the simulated storage may be read beside a write).
    func stepWhileHeld(_ m: Message) -> Bool {
        return whileHeld(m.to) { $0.stepWithoutStorage(m) }
    }

    /// Asks `id` for a read index as a ``RaftNode`` does while its disk write is in flight, if
    /// its batch is held: without storage (``RaftCore/readIndexWithoutStorage(context:confirmation:)``),
    /// sending what that produced at once. Returns whether the request was taken; if not, ask
    /// with ``RaftCore/readIndex(context:confirmation:)`` (through ``withCore(_:_:)``).
    public func readIndexWhileHeld(_ id: NodeID, context: [UInt8], confirmation: ReadConfirmation) -> Bool {
        whileHeld(id) { $0.readIndexWithoutStorage(context: context, confirmation: confirmation) }
    }

    /// Runs `body` on node `id`'s core if its batch is held, then sends the messages and reports
    /// the reads it produced; `false` if the batch is not held.
    func whileHeld(_ id: NodeID, _ body: (inout RaftCore) -> Bool) -> Bool {
        let i = slot(id)
        guard inProgress[i] != nil, var c = cores[i] else { return false }
        let before = CommitWatch(c)
        let taken = body(&c)
        let out = c.takeInterimOutput()
        checkCommitQuorum(i, before, c)
        cores[i] = c
        for sent in out.messages { send(sent) }
        if !out.readStates.isEmpty { onInterimReads?(ids[i], out.readStates) }
        return taken
    }

    /// Delivers every queued message (and what they cause) in FIFO order until none is left,
    /// ignoring delays. Returns how many were delivered.
    @discardableResult
    public func deliverAll(limit: Int = 100_000) -> Int {
        var n = 0
        while !queue.isEmpty && n < limit {
            let m = queue.removeFirst().msg
            deliverIfConnected(m)
            n += 1
        }
        return n
    }

    /// Delivers only the messages queued right now, not those they cause. Returns the count.
    @discardableResult
    public func deliverQueued(where filter: (Message) -> Bool = { _ in true }) -> Int {
        let batch = queue
        queue.removeAll()
        var n = 0
        for q in batch {
            if filter(q.msg) {
                deliverIfConnected(q.msg)
                n += 1
            } else {
                queue.append(q)
            }
        }
        return n
    }

    /// Drops queued messages matching `filter`. Returns how many.
    @discardableResult
    public func dropQueued(where filter: (Message) -> Bool) -> Int {
        let before = queue.count
        queue.removeAll { filter($0.msg) }
        return before - queue.count
    }

    /// Handles every node's pending work and delivers messages until the cluster is quiet.
    public func stabilize() { deliverAll() }

    /// Splits the cluster: each array is a group that can talk only within itself; nodes not
    /// listed form one more group.
    public func partition(_ groups: [[NodeID]]) {
        for i in partitionGroup.indices { partitionGroup[i] = groups.count }
        for (g, members) in groups.enumerated() { for id in members { partitionGroup[slot(id)] = g } }
        note("partition \(groups)")
    }

    /// Removes every partition.
    public func heal() {
        for i in partitionGroup.indices { partitionGroup[i] = 0 }
        note("heal")
    }

    // MARK: Crashes

    /// Crashes `id`. If it has a batch pending, `phase` says how far it got: 0 nothing done,
    /// 1 early messages sent, 2 also written to disk but not synced (torn by the power loss on a
    /// ``FileDisk``), 3 also synced, 4 also late messages sent (a batch stalled by
    /// ``hold(_:)`` has sent its early messages already). All memory is lost.
    public func crash(_ id: NodeID, phase: Int = 0) {
        let i = slot(id)
        guard var c = cores[i] else { return }
        var pending = inProgress[i]
        if pending == nil && c.hasReady && phase > 0 {
            do {
                let rd = try c.ready()
                for m in rd.messages { send(m) }
                pending = rd
            } catch {
                checker.fail("storage: node \(ids[i]) failed a read: \(error)")
            }
        }
        if let rd = pending {
            if phase == 2 { writeWithoutSync(i, rd) }
            if phase >= 3 { persist(i, rd) }
            if phase >= 4 { for m in rd.messagesAfterPersist { send(m) } }
        }
        cores[i] = nil
        inProgress[i] = nil
        held.remove(i)
        userMachines?.stop(i)
        disks[i].powerLoss(seed: rng.next())
        note("crash \(id) phase \(phase)")
    }

    /// Restarts `id` from its storage; its state machine is rebuilt from the latest snapshot.
    public func restart(_ id: NodeID) throws(RaftError) {
        let i = slot(id)
        guard cores[i] == nil else { return }
        let s = try disks[i].open()
        storages[i] = s
        checker.reloaded(i, storage: s, unsynced: unsyncedEntries[i])
        unsyncedEntries[i] = []
        let snap = try s.snapshot()
        machines[i] = snap.isEmpty ? SimStateMachine() : (hashMachine(fromSnapshot: snap.data) ?? SimStateMachine())
        startUserMachine(i, from: snap)
        let c = try RaftCore(configuration: configs[i], storage: s)
        cores[i] = c
        restarts[i] += 1
        checker.restarted(i, commit: c.commitIndex)
        note("restart \(id)")
        process(i)
    }

    /// Replaces the disk of `id` with an empty one bootstrapped with the cluster's voters, as
    /// if an operator wiped it, and restarts it.
    public func wipe(_ id: NodeID) throws(RaftError) {
        let i = slot(id)
        cores[i] = nil
        inProgress[i] = nil
        held.remove(i)
        disks[i] = makeDisk(bootstrap(ids[i]))
        storages[i] = try disks[i].open()
        machines[i] = SimStateMachine()
        userMachines?.stop(i)
        checker.wiped(i)
        note("wipe \(id)")
        try restart(id)
    }

    /// Snapshots the state machine of `id` at its applied index and compacts the log,
    /// keeping ``compactionTrail`` entries. Returns the snapshot index, if one was taken.
    @discardableResult
    public func compact(_ id: NodeID) -> LogIndex? {
        let i = slot(id)
        guard let c = cores[i] else { return nil }
        // One snapshot at a time, as on a node: the one being saved is finished first.
        finishSnapshot(i)
        let sm = machines[i]
        guard let held = try? storages[i].snapshot(), sm.applied > held.metadata.index, sm.applied == c.appliedIndex,
            let data = snapshotData(i, sm)
        else { return nil }
        return recordSnapshot(i, at: sm.applied, data: data) ? sm.applied : nil
    }

    /// Records node `i`'s snapshot at `index` (applied, durable) and compacts its log,
    /// keeping ``compactionTrail`` entries. Returns whether it was recorded.
    @discardableResult
    func recordSnapshot(_ i: Int, at index: LogIndex, data: [UInt8]) -> Bool {
        let s = storages[i]
        do {
            // The snapshot records the membership in force at its index.
            guard let conf = cores[i]?.membership(at: index) else { return false }
            try s.createSnapshot(at: index, confState: conf, data: data)
            let upTo = index.rawValue > compactionTrail ? index - compactionTrail : .zero
            if upTo >= s.firstIndex() {
                try s.compact(upTo: upTo)
                checker.compacted(i, upTo: upTo)
            }
            userMachines?.stats.snapshotsSaved += 1
            note("compact \(ids[i]) at \(index)")
            return true
        } catch {
            checker.fail("compaction: node \(ids[i]): \(error)")
            return false
        }
    }
}
