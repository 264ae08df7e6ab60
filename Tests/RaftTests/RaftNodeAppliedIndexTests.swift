import Raft
import RaftTestKit
import Testing

/// An on-disk state machine that misreports its applied index (one below the truth), as a
/// buggy one would: once its index reaches `afterApplying`, or after a restore from a snapshot
/// while `afterRestore` is set.
final class MisreportingKV: OnDiskStateMachine {
    let inner: DiskKV
    let afterApplying: LogIndex?
    let afterRestore: Flag
    var misreporting = false

    init(disk: KVDisk, afterApplying: LogIndex? = nil, afterRestore: Flag = Flag()) {
        inner = DiskKV(disk: disk)
        self.afterApplying = afterApplying
        self.afterRestore = afterRestore
    }

    var appliedIndex: LogIndex { misreporting ? inner.appliedIndex - 1 : inner.appliedIndex }
    func openState() throws -> LogIndex { try inner.openState() }
    func syncState() throws { try inner.syncState() }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        let results = try inner.apply(entries)
        if let at = afterApplying, inner.appliedIndex >= at { misreporting = true }
        return results
    }

    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot() }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws {
        try DiskKV.saveSnapshot(context, to: output)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        try inner.recoverSnapshot(from: input, metadata: metadata)
        if afterRestore.isSet { misreporting = true }
    }
}

/// Every applied-index violation stops the node with ``RaftError/Code/stateMachine`` (the state
/// machine broke its contract) and a message that names the node and the step.
@Suite("RaftNode applied-index errors")
struct RaftNodeAppliedIndexTests {
    /// A log of ten committed entries on a single voter, with a snapshot at `snapshot` (or none).
    func log(snapshot: UInt64?) throws -> MemoryLogStorage {
        let storage = MemoryLogStorage(voters: [1])
        try storage.append((1...10).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: Array("k\($0)=v\($0)".utf8)) })
        storage.setHardState(HardState(term: 1, vote: 1, commit: 10))
        if let snapshot {
            try storage.createSnapshot(at: LogIndex(rawValue: snapshot), data: encodeKV(["k": "v"]))
            try storage.compact(upTo: LogIndex(rawValue: snapshot))
        }
        return storage
    }

    /// Runs a single node until it stops on its own, and returns the error it stopped with.
    func stoppingError<SM: StateMachine>(storage: sending MemoryLogStorage, machine: sending SM) async throws -> RaftError? {
        let clock = ManualClock()
        let node = try RaftNode(configuration: RaftNodeConfiguration(id: 1), storage: storage, stateMachine: machine, transport: LocalTransport(), clock: clock)
        let run = Task { try await node.run() }
        for _ in 0..<200 {
            guard (try? await node.status()) != nil else { break }
            clock.advance(by: .milliseconds(100))
            for _ in 0..<20 { await Task.yield() }
        }
        node.stop()
        do {
            try await run.value
            return nil
        } catch {
            return try #require(error as? RaftError)
        }
    }

    @Test func aheadOfTheLogAtOpen() async throws {
        let disk = KVDisk()
        disk.applied = 50
        let error = try await stoppingError(storage: try log(snapshot: nil), machine: DiskKV(disk: disk))
        #expect(error?.code == .stateMachine)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("node 1: "), "\(message)")
        #expect(message.contains("opening") && message.contains("50") && message.contains("10"), "\(message)")
    }

    @Test func goingBackwardsAfterApply() async throws {
        let error = try await stoppingError(storage: try log(snapshot: nil), machine: MisreportingKV(disk: KVDisk(), afterApplying: 4))
        #expect(error?.code == .stateMachine)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("node 1: "), "\(message)")
        #expect(message.contains("after applying entries") && message.contains("went backwards"), "\(message)")
    }

    @Test func goingBackwardsAfterRestoringASnapshotAtStart() async throws {
        let restoring = Flag()
        restoring.set()
        let error = try await stoppingError(storage: try log(snapshot: 6), machine: MisreportingKV(disk: KVDisk(), afterRestore: restoring))
        #expect(error?.code == .stateMachine)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("node 1: "), "\(message)")
        #expect(message.contains("after restoring snapshot 6 at startup"), "\(message)")
        #expect(!message.contains("after opening"), "\(message)")
    }

    /// A follower behind the leader's compacted log installs its snapshot, and its state machine
    /// then misreports: that follower stops; the error names it and the install.
    @Test func goingBackwardsAfterInstallingASnapshotAtRunTime() async throws {
        let disks: [NodeID: KVDisk] = [1: KVDisk(), 2: KVDisk(), 3: KVDisk()]
        let faulty: [NodeID: Flag] = [1: Flag(), 2: Flag(), 3: Flag()]
        let h = NodeHarness<MisreportingKV>(make: { MisreportingKV(disk: disks[$0]!, afterRestore: faulty[$0]!) }) { c in
            c.snapshotEvery = 10
            c.compactionTrail = 2
        }
        let (leader, lagging) = try await h.startWithOneFollowerStopped()
        for k in 0..<30 { _ = try await h.propose("k\(k)=\(k)", at: leader) }
        _ = try await h.waitFor(leader) { $0.raft.firstIndex > 2 }
        faulty[lagging]!.set()
        try h.start(lagging)
        for _ in 0..<60 where !h.ended.withLock({ $0.dead.contains(lagging) }) { await h.tick() }
        let result = await h.runs[lagging]!.result
        await h.stopAll()
        guard case .failure(let e) = result, let error = e as? RaftError else {
            Issue.record("the follower did not stop on an error: \(result)")
            return
        }
        #expect(error.code == .stateMachine)
        #expect(error.message.hasPrefix("node \(lagging): "), "\(error.message)")
        #expect(error.message.contains("after installing snapshot") && error.message.contains("from the leader"), "\(error.message)")
        #expect(disks[lagging]!.restoresFromSnapshot == 1)
    }
}

/// What the runtime cannot detect, documented on ``OnDiskStateMachine``.
@Suite("RaftNode: undetectable applied-index faults")
struct RaftNodeUndetectableTests {
    /// Between two runs, a durable index that went back but stays above the log's snapshot
    /// looks like lazy syncing: the node does not stop, and the entries after it are fed again.
    /// A state machine whose data was ahead of its index (here: total 5, index 3) applies them
    /// twice.
    @Test func durableIndexGoingBackBetweenRunsIsFedAgain() async throws {
        let dir = TempDirectory()
        let path = dir.path + "/counter"
        let record = ApplyRecord()
        func run(_ body: (RaftNode<FileCounter>) async throws -> Void) async throws {
            let clock = ManualClock()
            let node = try RaftNode(
                configuration: RaftNodeConfiguration(id: 1), storage: FileLogStorage(directory: dir.path + "/raft", voters: [1]),
                stateMachine: FileCounter(path: path, record: record), transport: LocalTransport(), clock: clock)
            let running = Task { try await node.run() }
            #expect(try await electSingleNode(node, clock: clock))
            try await body(node)
            node.stop()
            try await running.value
        }
        // Index 1 is the leader's no-op, 2...6 add 1 each.
        try await run { node in for _ in 0..<5 { _ = try await node.propose([1]) } }
        #expect(record.reapplied.isEmpty)
        // The data of index 6 (total 5) with an index of 3, as if the index were written apart.
        let wrong = FileCounter(path: path)
        wrong.appliedIndex = 3
        wrong.total = 5
        try wrong.syncState()
        try await run { node in
            let total = try await node.propose([1])
            #expect(total == "9", "entries 4...6 were applied again (5 + 3), then the new one")
            #expect(try await node.status().applied > 6)
        }
        #expect(record.reapplied == [4, 5, 6])
    }
}
