import Raft

/// What a ``SimCluster`` asks of the user's state machine, with the machine's type erased:
/// `SimCluster` stays one non-generic class, so every existing call site, scenario file and
/// test (and the hash machine, the default) is unchanged, and a cluster without a user machine
/// behaves exactly as before.
protocol SimMachineDriver: AnyObject {
    /// What the user's machines did so far.
    var stats: SimMachineStats { get set }
    /// The rules broken so far.
    var findings: [SimStateMachineFinding] { get }
    /// One valid command, from the user's generator.
    func nextCommand() -> [UInt8]
    /// Rounds to wait between preparing a snapshot and saving it.
    func saveDelay() -> Int
    /// Gives node slot `n` a new instance, recovered from `snapshot` (its user part) if one is
    /// given. Returns whether the node has a working instance.
    @discardableResult
    func start(_ n: Int, snapshot: ArraySlice<UInt8>?, metadata: SnapshotMetadata, source: String) -> Bool
    /// Drops node slot `n`'s instance (a crash or a wipe): its memory is lost, and with it any
    /// snapshot prepared and not saved yet.
    func stop(_ n: Int)
    /// Applies committed entries on node slot `n`, compares results and states.
    func apply(_ n: Int, _ entries: ArraySlice<LogEntry>)
    /// Recovers node slot `n`'s live instance from a snapshot the leader sent, after saving
    /// (and dropping) the snapshot it had prepared, if any, as ``Raft/RaftNode`` does.
    func install(_ n: Int, _ bytes: ArraySlice<UInt8>, metadata: SnapshotMetadata)
    /// Prepares a snapshot of node slot `n` at `metadata.index`, to be saved at round `due` by
    /// ``saveSnapshot(_:)``; `hashData` is the hash machine's part. Returns `false` if the node
    /// has no instance, already has a snapshot prepared, or preparing failed (a finding).
    func prepareSnapshot(_ n: Int, _ metadata: SnapshotMetadata, hashData: [UInt8], due: Int) -> Bool
    /// The snapshots prepared and not saved yet: node slot, index and the round each is due.
    var pendingSnapshots: [(slot: Int, index: LogIndex, due: Int)] { get }
    /// Saves node slot `n`'s prepared snapshot and checks that it holds the state at its index.
    /// Returns its index and data (the hash machine's part, then the user's bytes), or `nil`
    /// if none was prepared or saving it broke a rule (a finding).
    func saveSnapshot(_ n: Int) -> (index: LogIndex, data: [UInt8])?
    /// Node slot `n`'s instance, for inspection.
    func instance(_ n: Int) -> AnyObject?
}

/// Runs one ``SimMachineUnderTest`` on every node of a cluster: one instance per node, every
/// result and every state recorded by index the first time a node reaches it, and every later
/// node (or the same node, fed the entry again after a restart) compared with it. Findings go
/// to the cluster's ``SafetyChecker`` as violations, so a simulation stops on them.
///
/// The calls follow the order a ``Raft/RaftNode`` makes them in: at most one snapshot context
/// per instance is alive at a time (prepared between two applies, saved some rounds later),
/// and it is saved and released before that instance recovers a snapshot or has its state
/// taken through its own snapshot (`SimMachineHost+Snapshots.swift`).
final class SimMachineHost<SM: StateMachine>: SimMachineDriver {
    /// One node's instance and how it got its state.
    struct Replica {
        var machine: SM
        /// Snapshot recoveries since the instance was made: index and where the snapshot came
        /// from.
        var recoveries: [(index: LogIndex, source: String)] = []
        /// The last index applied, or recovered from a snapshot, and its term.
        var applied: LogIndex = .zero
        var appliedTerm: Term = .zero
    }

    /// A state as compared: a hash of its digest, and a short rendering for messages.
    struct Digest {
        var node: NodeID
        var hash: UInt64
        var preview: String
        /// Whether the node that reached it had recovered a snapshot before.
        var viaSnapshot: Bool
        /// The snapshot bytes the digest was taken from (without ``SimMachineUnderTest/describeState``,
        /// up to ``keptBytes``), to tell equal states saved in different orders from different
        /// states.
        var bytes: [UInt8]?
    }

    let machine: SimMachineUnderTest<SM>
    let ids: [NodeID]
    let checker: SafetyChecker
    let saveRounds: ClosedRange<Int>
    /// The membership in force at an index, on a node slot (the cluster's core knows it).
    let membership: (Int, LogIndex) -> ConfState?
    var replicas: [Replica?]
    var digests: [LogIndex: Digest] = [:]
    var results: [LogIndex: (node: NodeID, result: SM.Result, viaSnapshot: Bool)] = [:]
    /// The snapshot context each node slot prepared and has not saved yet.
    var pending: [Int: Pending] = [:]
    var stats = SimMachineStats()
    private(set) var findings: [SimStateMachineFinding] = []
    /// The generator of the user's commands, apart from `choices` so the command sequence
    /// does not depend on how entries were batched.
    var commandRandom: SeededGenerator
    /// Batch sizes and snapshot save delays; apart from the cluster's own generator, so the
    /// fault schedule of a seed does not depend on them.
    var choices: SeededGenerator
    /// A run stops being useful after its first disagreement: later indexes disagree too.
    static var maxFindings: Int { 3 }
    /// Snapshot bytes kept per digest, at most.
    static var keptBytes: Int { 16 * 1024 }

    init(
        _ machine: SimMachineUnderTest<SM>, ids: [NodeID], seed: UInt64, checker: SafetyChecker, saveRounds: ClosedRange<Int>,
        membership: @escaping (Int, LogIndex) -> ConfState?
    ) {
        self.machine = machine
        self.ids = ids
        self.checker = checker
        self.membership = membership
        self.saveRounds = max(0, saveRounds.lowerBound)...max(0, saveRounds.upperBound)
        replicas = Array(repeating: nil, count: ids.count)
        commandRandom = SeededGenerator(seed: seed ^ 0xC0_33A2_D5)
        choices = SeededGenerator(seed: seed ^ 0x5157_4D41_4348)
    }

    func nextCommand() -> [UInt8] { machine.commands(&commandRandom) }

    func saveDelay() -> Int { saveRounds.lowerBound + Int(choices.next() % UInt64(saveRounds.count)) }

    func instance(_ n: Int) -> AnyObject? { replicas[n]?.machine }

    func report(_ finding: SimStateMachineFinding) {
        guard findings.count < Self.maxFindings else { return }
        findings.append(finding)
        checker.fail(SimStateMachineFinding.violationPrefix + finding.description)
    }

    /// What a snapshot of node slot `n` at `index` would record: the term and the membership
    /// in force at that index (empty on a node that joined later and does not know it; a
    /// ``Raft/RaftNode`` takes no snapshot there).
    func metadata(_ n: Int, at index: LogIndex, term: Term) -> SnapshotMetadata {
        SnapshotMetadata(index: index, term: term, confState: membership(n, index) ?? .empty)
    }

    // MARK: Instances

    @discardableResult
    func start(_ n: Int, snapshot: ArraySlice<UInt8>?, metadata: SnapshotMetadata, source: String) -> Bool {
        stop(n)
        guard let made = fresh(n) else { return false }
        replicas[n] = Replica(machine: made)
        guard let snapshot else { return true }
        return recover(n, snapshot, metadata: metadata, source: source)
    }

    /// A new instance from the factory, which must hold an empty state; `nil` (a finding) if
    /// the factory or opening its state throws, or it opens a durable state.
    func fresh(_ n: Int) -> SM? {
        do {
            let made = try machine.make()
            if let held = try made.openDurableState(), held != .zero {
                broke(
                    n, .freshInstance, at: held, "a new instance from the factory opened a durable state at index \(held)",
                    fix: "the simulation rebuilds a restarted node from its snapshot and the log: make the factory return an empty state "
                        + "(a new directory for an on-disk state machine)")
                return nil
            }
            return made
        } catch {
            broke(n, .freshInstance, at: nil, "the factory (or opening its state) threw: \(error)", fix: "the factory must make an empty instance")
            return nil
        }
    }

    func stop(_ n: Int) {
        replicas[n] = nil
        pending[n] = nil
    }

    func install(_ n: Int, _ bytes: ArraySlice<UInt8>, metadata: SnapshotMetadata) {
        guard replicas[n] != nil else { return }
        // RaftNode restores after the snapshot being saved is done; the installed snapshot is
        // newer, so the saved one is dropped (its bytes are still checked).
        if pending[n] != nil { _ = saveSnapshot(n) }
        recover(n, bytes, metadata: metadata, source: "the leader's snapshot")
    }

    /// Recovers node `n`'s instance from `bytes` and compares the state it then holds with the
    /// state others held at the snapshot's index.
    @discardableResult
    func recover(_ n: Int, _ bytes: ArraySlice<UInt8>, metadata: SnapshotMetadata, source: String) -> Bool {
        guard var replica = replicas[n] else { return false }
        let before = digest(of: replica, n, metadata)
        do { try replica.machine.recoverSnapshot(from: SnapshotInput(Array(bytes)), metadata: metadata) } catch {
            broke(
                n, .snapshotRecover, at: metadata.index, "recoverSnapshot threw on \(source) at index \(metadata.index) (\(bytes.count) bytes): \(error)",
                fix: "recoverSnapshot must read back everything saveSnapshot wrote")
            return false
        }
        if let reported = replica.machine.reportedAppliedIndex, reported != metadata.index {
            broke(
                n, .reportedAppliedIndex, at: metadata.index,
                "after recovering \(source) at index \(metadata.index) the state machine reports applied index \(reported)",
                fix: "recoverSnapshot must set the applied index to the snapshot's (metadata.index)")
            return false
        }
        replica.recoveries.append((metadata.index, source))
        replica.applied = metadata.index
        replica.appliedTerm = metadata.term
        replicas[n] = replica
        stats.snapshotsRecovered += 1
        guard let after = digest(of: replica, n, metadata) else { return false }
        compare(n, metadata, after, recovered: (source, before))
        return true
    }

    // MARK: Applying

    func apply(_ n: Int, _ entries: ArraySlice<LogEntry>) {
        var start = entries.startIndex
        while start < entries.endIndex, let replica = replicas[n] {
            // Batches of varying size: each node sees other batch boundaries, and the state is
            // compared at the end of each.
            let end = min(entries.endIndex, start + 1 + Int(choices.next() % 4))
            applyBatch(n, replica, entries[start..<end])
            start = end
        }
    }

    func applyBatch(_ n: Int, _ replica: Replica, _ batch: ArraySlice<LogEntry>) {
        guard let first = batch.first, let last = batch.last else { return }
        let span = "\(first.index)...\(last.index)"
        let got: [SM.Result]
        do { got = try replica.machine.apply(batch) } catch {
            broke(
                n, .applyThrows, at: first.index, "apply threw on entries \(span): \(error)",
                fix: "apply must accept every committed command (answer a command it refuses with an error result: a thrown error stops the node)")
            return
        }
        stats.entriesApplied += batch.count
        replicas[n]?.applied = last.index
        replicas[n]?.appliedTerm = last.term
        let commands = batch.filter { $0.kind == .command }
        guard got.count == commands.count else {
            broke(
                n, .oneResultPerCommand, at: last.index, "apply returned \(got.count) results for entries \(span), which hold \(commands.count) commands",
                fix: "return exactly one result per command entry, in order, and none for a no-op entry")
            return
        }
        if let reported = replica.machine.reportedAppliedIndex, reported != last.index {
            broke(
                n, .reportedAppliedIndex, at: last.index, "after applying entries \(span) the state machine reports applied index \(reported)",
                fix: "after apply, report the index of the last entry given (no-ops included)")
            return
        }
        let viaSnapshot = !replica.recoveries.isEmpty
        for (entry, result) in zip(commands, got) {
            guard let known = results[entry.index] else {
                results[entry.index] = (ids[n], result, viaSnapshot)
                continue
            }
            stats.resultsCompared += 1
            if !machine.resultsMatch(known.result, result) {
                resultsDiffer(n, replica, entry, result, known)
                return
            }
        }
        // Taking the state through a second snapshot context while one is being saved is
        // something RaftNode never does (a state machine may allow one read transaction at a
        // time): the state is compared again when the snapshot is saved.
        guard pending[n] == nil || machine.describeState != nil else { return }
        let at = metadata(n, at: last.index, term: last.term)
        guard let state = digest(of: replica, n, at) else { return }
        compare(n, at, state, recovered: nil)
    }

    /// Node `n`'s instance broke the contract: it is dropped (a real node stops), and the
    /// finding reported.
    func broke(_ n: Int, _ rule: SimStateMachineFinding.Rule, at index: LogIndex?, _ problem: String, fix: String) {
        stop(n)
        report(.init(rule, cause: .contract, node: ids[n], at: index, problem, fix: fix))
    }

    // MARK: States

    /// The digest of `replica`'s state: the user's description, or its snapshot's bytes.
    func digest(of replica: Replica, _ n: Int, _ metadata: SnapshotMetadata) -> Digest? {
        do {
            return try digest(of: replica.machine, node: ids[n], metadata, viaSnapshot: !replica.recoveries.isEmpty)
        } catch {
            snapshotFailed(n, metadata.index, "taking the state at index \(metadata.index) (sync, then \(stateSource)) threw: \(error)")
            return nil
        }
    }

    /// The digest of `m`'s state, after a sync: the user's description, or the bytes of a
    /// snapshot prepared and saved at once (its context released before this returns).
    func digest(of m: SM, node: NodeID, _ metadata: SnapshotMetadata, viaSnapshot: Bool) throws -> Digest {
        try m.sync()
        if let describe = machine.describeState {
            let text = try describe(m)
            let preview = "\"" + (text.count > 120 ? String(text.prefix(120)) + "..." : text) + "\""
            return Digest(node: node, hash: Self.hash(Array(text.utf8)), preview: preview, viaSnapshot: viaSnapshot)
        }
        let output = SnapshotOutput(inMemory: metadata)
        try SM.saveSnapshot(try m.prepareSnapshot(), to: output)
        return digest(ofSnapshot: output.data, node: node, viaSnapshot: viaSnapshot)
    }

    /// The digest of a state compared through its snapshot bytes.
    func digest(ofSnapshot bytes: [UInt8], node: NodeID, viaSnapshot: Bool) -> Digest {
        Digest(
            node: node, hash: Self.hash(bytes), preview: "a snapshot of \(bytes.count) bytes: " + Self.render(bytes), viaSnapshot: viaSnapshot,
            bytes: bytes.count <= Self.keptBytes ? bytes : nil)
    }

    /// How states are taken, for messages.
    var stateSource: String { machine.describeState == nil ? "prepareSnapshot and saveSnapshot" : "describeState" }

    /// FNV-1a over the digest's bytes.
    static func hash(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h ^ UInt64(bytes.count)
    }

    /// The first bytes as text when printable, otherwise in hex.
    static func render(_ bytes: [UInt8]) -> String {
        let head = bytes.prefix(48)
        let tail = bytes.count > head.count ? "..." : ""
        if head.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x0A }) {
            return "\"" + String(decoding: head, as: UTF8.self).replacingNewlines() + tail + "\""
        }
        return head.map { b in String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }.joined() + tail
    }
}

extension String {
    /// Newlines shown as `\n`, to keep a message on one line.
    fileprivate func replacingNewlines() -> String { split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n") }
}
