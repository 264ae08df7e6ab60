import Dispatch
import Raft
import Synchronization

// The single-instance checks of the in-memory contract: determinism, snapshot round trip,
// snapshot isolation.
extension CheckRun {
    static var deterministicFix: String {
        "apply must depend only on the state and the entries it is given: no clock, random numbers, global or static state, I/O whose outcome can differ, or batch boundaries"
    }

    /// Two instances, one fed one entry at a time (the reference), the other in batches of
    /// varying size: same results, same state after every batch.
    func determinism() throws(Failure) -> [String] {
        let check = StateMachineCheck.determinism
        let reference = try referenceRun(check)
        let (machine, _) = try fresh("determinism", check)
        var batches = 0
        let results = try applyInBatches(machine, 1...last, check) { (batch: ClosedRange<Int>) throws(Failure) in
            batches += 1
            try expect(try image(of: machine, at: batch.upperBound, check), at: batch.upperBound, reference, check, fix: Self.deterministicFix) { difference in
                "after entries 1...\(batch.upperBound) an instance fed them in batches holds another state than one fed them one at a time: \(difference)"
            }
        }
        try compare(results, with: reference, check, what: "an instance fed the entries in batches", fix: Self.deterministicFix)
        return ["\(last) entries, \(reference.results.count) commands, applied one at a time and in \(batches) batches"]
    }

    /// Fails `check` at `index` unless `held` is the reference's state there; `problem` says
    /// what happened, given how the states differ.
    func expect(_ held: StateImage, at index: Int, _ reference: Reference, _ check: StateMachineCheck, fix: String, _ problem: (String) -> String) throws(Failure) {
        guard held != reference.images[index] else { return }
        throw Failure(check, at: LogIndex(rawValue: UInt64(index)), problem(held.difference(from: reference.images[index])), fix: fix)
    }

    /// Compares results with the reference's, index by index.
    func compare(_ results: [(index: Int, result: SM.Result)], with reference: Reference, _ check: StateMachineCheck, what: String, fix: String) throws(Failure) {
        for (index, result) in results {
            guard let expected = reference.results[index] else { continue }
            if !checks.resultsMatch(result, expected) {
                throw Failure(
                    check, at: LogIndex(rawValue: UInt64(index)),
                    "entry \(index) gave \(describe(result)) on \(what), \(describe(expected)) on an instance fed the same entries one at a time",
                    fix: fix)
            }
        }
    }

    /// A snapshot saved at an index, recovered into a fresh instance and into one holding an
    /// older state: the state at that index, and the same results after it.
    func snapshotRoundTrip() throws(Failure) -> [String] {
        let check = StateMachineCheck.snapshotRoundTrip
        let reference = try referenceRun(check)
        let at = max(1, last / 4 + Int(random.next() % UInt64(max(1, last / 4))))
        let (saver, _) = try fresh("snapshot-saver", check)
        try applyInBatches(saver, 1...at, check)
        let saved = try snapshot(of: saver, at: at, check)
        let fix = "recoverSnapshot must replace the whole state with the one saveSnapshot wrote (read all of it; drop what the instance held before) and set the applied index to the snapshot's"
        let older = max(0, at / 2)
        for (label, before) in [("a fresh instance", 0), ("an instance holding index \(older)", older)] {
            let (machine, _) = try fresh("snapshot-recovered", check)
            if before > 0 { try applyInBatches(machine, 1...before, check) }
            try recover(machine, from: saved, at: at, check)
            let held = try image(of: machine, at: at, check)
            try expect(held, at: at, reference, check, fix: fix) { difference in
                "\(label), recovered from the snapshot saved at index \(at), holds another state than the instance that saved it (\(difference)); \(whichState(held, in: 0...at, near: before))"
            }
            let end = min(last, at + 40)
            guard end > at else { continue }
            let results = try applyInBatches(machine, (at + 1)...end, check)
            try compare(results, with: reference, check, what: "\(label) recovered from the snapshot of index \(at)", fix: fix)
            try expect(try image(of: machine, at: end, check), at: end, reference, check, fix: fix) { difference in
                "\(label), recovered from the snapshot of index \(at) and fed entries \(at + 1)...\(end), holds another state than the reference at \(end): \(difference)"
            }
        }
        return ["snapshot at index \(at) (\(saved.count) bytes) recovered into a fresh instance and one at index \(older)"]
    }

    /// A context prepared at an index saves the state at that index, after later applies
    /// (saved once they are done, then on another thread while they run).
    func snapshotIsolation() async throws(Failure) -> [String] {
        let check = StateMachineCheck.snapshotIsolation
        let reference = try referenceRun(check)
        let first = max(1, last / 3)
        let second = max(first, (2 * last) / 3)
        let (machine, _) = try fresh("snapshot-isolation", check)
        try applyInBatches(machine, 1...first, check)
        let early = try prepare(machine, at: first, check)
        if second > first { try applyInBatches(machine, (first + 1)...second, check) }
        let savedLater: [UInt8]
        do { savedLater = try Self.save(early, metadata: metadata(at: first)) } catch {
            throw Failure(check, at: LogIndex(rawValue: UInt64(first)), "saving the context prepared at index \(first) failed after later applies: \(error)", fix: Self.isolationFix)
        }
        try expectState(savedLater, at: first, reference, check, what: "saved after entries \(first + 1)...\(second) were applied", live: second)
        // Now for real: the save runs on another thread while apply goes on.
        let late = try prepare(machine, at: second, check)
        let saving = SaveOnAnotherThread<SM>(late, metadata: metadata(at: second))
        if last > second {
            for index in (second + 1)...last { try apply(machine, index...index, check) }
        }
        let savedBeside: [UInt8]
        do { savedBeside = try await saving.result() } catch {
            throw Failure(check, at: LogIndex(rawValue: UInt64(second)), "saving the context prepared at index \(second) beside apply failed: \(error)", fix: Self.isolationFix)
        }
        try expectState(savedBeside, at: second, reference, check, what: "saved on another thread while entries \(second + 1)...\(last) were applied", live: last)
        return ["contexts prepared at \(first) and \(second); saved after \(second - first) and beside \(last - second) later applies"]
    }

    static var isolationFix: String {
        "prepareSnapshot must capture a point-in-time view that later applies do not change: a copy of the state (a copy-on-write value), or a read transaction or snapshot of your database; never a reference to the live state (a class instance, a shared buffer, files apply goes on changing)"
    }

    func prepare(_ machine: SM, at index: Int, _ check: StateMachineCheck) throws(Failure) -> SM.SnapshotContext {
        do {
            try machine.sync()
            return try machine.prepareSnapshot()
        } catch {
            throw Failure(check, at: LogIndex(rawValue: UInt64(index)), "preparing a snapshot at index \(index) failed: \(error)", fix: "sync and prepareSnapshot must succeed on any state apply produced")
        }
    }

    /// Checks that `snapshot`, saved from a context prepared at `index`, holds the state at
    /// `index` (recovered into a fresh instance when states are compared by description).
    func expectState(_ snapshot: [UInt8], at index: Int, _ reference: Reference, _ check: StateMachineCheck, what: String, live: Int) throws(Failure) {
        let held: StateImage
        if checks.describeState == nil {
            held = StateImage(bytes: snapshot)
        } else {
            let (machine, _) = try fresh("snapshot-isolation-recovered", check)
            try recover(machine, from: snapshot, at: index, check)
            held = try image(of: machine, at: index, check)
        }
        guard held != reference.images[index] else { return }
        throw Failure(
            check, at: LogIndex(rawValue: UInt64(index)),
            "the snapshot prepared at index \(index) and \(what) holds another state than the one at \(index) (\(held.difference(from: reference.images[index]))); \(whichState(held, in: index...live, near: live))",
            fix: Self.isolationFix)
    }
}

/// A snapshot saved on a dispatch thread from a context, while the caller goes on applying.
final class SaveOnAnotherThread<SM: StateMachine>: Sendable {
    private let outcome = Mutex<Swift.Result<[UInt8], any Error>?>(nil)
    private let group = DispatchGroup()

    init(_ context: SM.SnapshotContext, metadata: SnapshotMetadata) {
        DispatchQueue.global().async(group: group) {
            let saved = Swift.Result { try CheckRun<SM>.save(context, metadata: metadata) }
            self.outcome.withLock { $0 = saved }
        }
    }

    /// Waits (without blocking a thread) until the save ended; its bytes or its error.
    func result() async throws -> [UInt8] {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in group.notify(queue: .global()) { c.resume() } }
        guard let saved = outcome.withLock({ $0 }) else { throw RaftError(.stateMachine, "the save ended without an outcome") }
        return try saved.get()
    }
}
