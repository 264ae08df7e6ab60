import Raft

/// One run of ``StateMachineChecks``: the workload (a log of committed entries), the reference
/// instance every other one is compared with, and the helpers the checks share. Used from the
/// run's task only.
final class CheckRun<SM: StateMachine> {
    typealias Failure = StateMachineCheckFailure

    /// How a check ended when it did not fail.
    enum Step {
        case passed([String])
        case notApplicable(String)
    }

    /// The state after each prefix of the workload, and the results, of one instance fed the
    /// entries one at a time.
    struct Reference {
        /// `images[i]`: the state after entries `1...i`.
        var images: [StateImage]
        /// The result of each command entry, by index.
        var results: [Int: SM.Result]
    }

    let checks: StateMachineChecks<SM>
    let directory: CheckDirectory
    /// The committed log every single-instance check feeds: `entries[i - 1]` is index `i`. Index
    /// 1 is a leader's no-op; a few more no-ops start new terms among the commands.
    let entries: [LogEntry]
    var random: SeededGenerator
    private var reference: Reference?
    /// Whether the state machine keeps durable state (known once an instance was opened).
    var onDisk: Bool?

    static var voters: [NodeID] { [1, 2, 3] }

    init(checks: StateMachineChecks<SM>, directory: CheckDirectory) {
        self.checks = checks
        self.directory = directory
        var random = SeededGenerator(seed: checks.options.seed)
        var commandRandom = SeededGenerator(seed: checks.options.seed ^ 0x5EED_C0DE)
        var log = [LogEntry(term: 1, index: 1, kind: .noop)]
        var term: Term = 1
        var commands = 0
        while commands < max(1, checks.options.commands) {
            let index = LogIndex(rawValue: UInt64(log.count + 1))
            if commands > 0 && random.next() % 40 == 0 {
                term = term.next
                log.append(LogEntry(term: term, index: index, kind: .noop))
            } else {
                log.append(LogEntry(term: term, index: index, data: checks.commands(&commandRandom)))
                commands += 1
            }
        }
        entries = log
        self.random = random
    }

    /// The last index of the workload.
    var last: Int { entries.count }

    func run(_ check: StateMachineCheck) async throws(Failure) -> Step {
        switch check {
        case .determinism: return .passed(try determinism())
        case .snapshotRoundTrip: return .passed(try snapshotRoundTrip())
        case .snapshotIsolation: return .passed(try await snapshotIsolation())
        case .onDiskAppliedIndex: return try onDiskAppliedIndex()
        case .runtime: return .passed(try await runtime())
        }
    }

    // MARK: Instances

    /// A new instance in a new, empty directory, opened as the runtime opens it.
    func fresh(_ label: String, _ check: StateMachineCheck) throws(Failure) -> (machine: SM, directory: String) {
        let dir: String
        do { dir = try directory.fresh(label) } catch {
            throw Failure(check, "cannot make a directory for an instance: \(error.message)", fix: "give the checks a writable temporary directory")
        }
        let machine = try instance(StateMachineEnvironment(directory: dir, isFresh: true), check)
        let held = try open(machine, check, what: "a fresh instance")
        if let held, held != .zero {
            throw Failure(
                .onDiskAppliedIndex, at: held, "a fresh instance in an empty directory reports applied index \(held) on opening",
                fix: "openState() must return 0 for a new, empty state")
        }
        onDisk = held != nil
        return (machine, dir)
    }

    /// A new instance over the directory an earlier (dropped) instance used; returns what
    /// opening it reports.
    func reopen(_ dir: String, _ check: StateMachineCheck, what: String) throws(Failure) -> (machine: SM, held: LogIndex?) {
        let machine = try instance(StateMachineEnvironment(directory: dir, isFresh: false), check)
        return (machine, try open(machine, check, what: what))
    }

    func instance(_ environment: StateMachineEnvironment, _ check: StateMachineCheck) throws(Failure) -> SM {
        do { return try checks.make(environment) } catch {
            throw Failure(check, "the factory threw for \(environment.directory): \(error)", fix: "the factory must make an instance for a fresh or a reused directory")
        }
    }

    func open(_ machine: SM, _ check: StateMachineCheck, what: String) throws(Failure) -> LogIndex? {
        do { return try machine.openDurableState() } catch {
            throw Failure(check, "opening the state of \(what) threw: \(error)", fix: "openState() must open a fresh directory and one an earlier instance left")
        }
    }

    // MARK: Applying

    /// Applies entries `range` to `machine`, checking what the contract says of every apply:
    /// it does not throw on valid commands, returns one result per command entry, and (when it
    /// reports an applied index) reports the last entry given. Returns the results by index.
    @discardableResult
    func apply(_ machine: SM, _ range: ClosedRange<Int>, _ check: StateMachineCheck) throws(Failure) -> [(index: Int, result: SM.Result)] {
        try feed(machine, entries[(range.lowerBound - 1)..<range.upperBound], check)
    }

    /// Applies `slice` (entries in order, from any log); see ``apply(_:_:_:)``.
    func feed(_ machine: SM, _ slice: ArraySlice<LogEntry>, _ check: StateMachineCheck) throws(Failure) -> [(index: Int, result: SM.Result)] {
        guard let firstEntry = slice.first, let lastEntry = slice.last else { return [] }
        let range = Int(firstEntry.index.rawValue)...Int(lastEntry.index.rawValue)
        let results: [SM.Result]
        do { results = try machine.apply(slice) } catch {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(range.lowerBound)), "apply threw on entries \(range.lowerBound)...\(range.upperBound): \(error)",
                fix: "apply must accept every committed command (answer a command it refuses with an error result: a thrown error stops the node)")
        }
        let commands = slice.filter { $0.kind == .command }.map { Int($0.index.rawValue) }
        guard results.count == commands.count else {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(range.upperBound)),
                "apply returned \(results.count) results for entries \(range.lowerBound)...\(range.upperBound), which hold \(commands.count) commands",
                fix: "return exactly one result per command entry, in order, and none for a no-op entry")
        }
        // The applied-index rules are the on-disk check's, whichever check meets them first.
        if let reported = machine.reportedAppliedIndex, reported.rawValue != UInt64(range.upperBound) {
            throw Failure(
                .onDiskAppliedIndex, at: LogIndex(rawValue: UInt64(range.upperBound)),
                "after applying entries \(range.lowerBound)...\(range.upperBound) the state machine reports applied index \(reported)",
                fix: "after apply, report the index of the last entry given (no-ops included)")
        }
        return Array(zip(commands, results)).map { (index: $0.0, result: $0.1) }
    }

    /// Applies `range` in batches of random sizes (1...16), as the runtime hands them over.
    @discardableResult
    func applyInBatches(_ machine: SM, _ range: ClosedRange<Int>, _ check: StateMachineCheck, after batch: (ClosedRange<Int>) throws(Failure) -> Void = { _ in })
        throws(Failure) -> [(index: Int, result: SM.Result)]
    {
        var out: [(index: Int, result: SM.Result)] = []
        var next = range.lowerBound
        while next <= range.upperBound {
            let end = min(range.upperBound, next + Int(random.next() % 16))
            out += try apply(machine, next...end, check)
            try batch(next...end)
            next = end + 1
        }
        return out
    }

    // MARK: States

    func metadata(at index: Int) -> SnapshotMetadata {
        SnapshotMetadata(index: LogIndex(rawValue: UInt64(index)), term: index == 0 ? .zero : entries[index - 1].term, confState: ConfState(voters: Self.voters))
    }

    static func metadata(at index: LogIndex, term: Term) -> SnapshotMetadata {
        SnapshotMetadata(index: index, term: term, confState: ConfState(voters: voters))
    }

    /// The snapshot `machine` saves at `index` (which it holds): synced, prepared, saved.
    func snapshot(of machine: SM, at index: Int, _ check: StateMachineCheck) throws(Failure) -> [UInt8] {
        try snapshot(of: machine, metadata(at: index), check)
    }

    func snapshot(of machine: SM, _ metadata: SnapshotMetadata, _ check: StateMachineCheck) throws(Failure) -> [UInt8] {
        let index = metadata.index
        do {
            try machine.sync()
            return try Self.save(try machine.prepareSnapshot(), metadata: metadata)
        } catch {
            throw Failure(
                check, at: index, "saving a snapshot at index \(index) failed: \(error)",
                fix: "sync, prepareSnapshot and saveSnapshot must succeed on any state apply produced")
        }
    }

    static func save(_ context: SM.SnapshotContext, metadata: SnapshotMetadata) throws -> [UInt8] {
        let output = SnapshotOutput(inMemory: metadata)
        try SM.saveSnapshot(context, to: output)
        return output.data
    }

    /// What `machine` holds at `index`: its description when the checks were given one,
    /// otherwise its snapshot's bytes.
    func image(of machine: SM, at index: Int, _ check: StateMachineCheck) throws(Failure) -> StateImage {
        try image(of: machine, metadata(at: index), check)
    }

    func image(of machine: SM, _ metadata: SnapshotMetadata, _ check: StateMachineCheck) throws(Failure) -> StateImage {
        guard let describe = checks.describeState else { return StateImage(bytes: try snapshot(of: machine, metadata, check)) }
        let index = metadata.index
        do {
            try machine.sync()
            return StateImage(text: try describe(machine))
        } catch {
            throw Failure(check, at: index, "describing the state at index \(index) failed: \(error)", fix: "describeState and sync must not fail")
        }
    }

    /// Restores `machine` from `snapshot` (saved at `index`), as a follower installs one.
    func recover(_ machine: SM, from snapshot: [UInt8], at index: Int, _ check: StateMachineCheck) throws(Failure) {
        try recover(machine, from: SnapshotInput(snapshot), metadata(at: index), check)
    }

    func recover(_ machine: SM, from input: SnapshotInput, _ metadata: SnapshotMetadata, _ check: StateMachineCheck) throws(Failure) {
        let index = metadata.index
        do { try machine.recoverSnapshot(from: input, metadata: metadata) } catch {
            throw Failure(
                check, at: index, "recoverSnapshot threw on the snapshot saved at index \(index): \(error)",
                fix: "recoverSnapshot must read back everything saveSnapshot wrote")
        }
        if let reported = machine.reportedAppliedIndex, reported != index {
            throw Failure(
                .onDiskAppliedIndex, at: index, "after recovering the snapshot of index \(index) the state machine reports applied index \(reported)",
                fix: "recoverSnapshot must set the applied index to the snapshot's (metadata.index)")
        }
    }

    /// The reference: a fresh instance fed the workload one entry at a time, its state taken
    /// after each. Built once, by the first check that needs it.
    func referenceRun(_ check: StateMachineCheck) throws(Failure) -> Reference {
        if let reference { return reference }
        let (machine, _) = try fresh("reference", check)
        var built = Reference(images: [try image(of: machine, at: 0, check)], results: [:])
        for index in 1...last {
            for r in try apply(machine, index...index, check) { built.results[r.index] = r.result }
            built.images.append(try image(of: machine, at: index, check))
        }
        reference = built
        return built
    }

    /// Where in `range` the reference holds `image`, the nearest to `near` first; `nil` if
    /// nowhere.
    func indexHolding(_ image: StateImage, in range: ClosedRange<Int>, near: Int) -> Int? {
        guard let reference else { return nil }
        let candidates = range.clamped(to: 0...last).sorted { abs($0 - near) < abs($1 - near) }
        return candidates.first { reference.images[$0] == image }
    }

    /// "it matches index 7" or "it matches no state between 0 and 12", for a failure message.
    func whichState(_ image: StateImage, in range: ClosedRange<Int>, near: Int) -> String {
        if let found = indexHolding(image, in: range, near: near) { return "it matches the state at index \(found)" }
        return "it matches no state the reference held between indexes \(range.lowerBound) and \(range.upperBound)"
    }

    func describe(_ result: SM.Result) -> String {
        let text = String(reflecting: result)
        return text.count > 80 ? String(text.prefix(80)) + "..." : text
    }
}

/// A state as the checks compare it: a description given by the user, or snapshot bytes.
struct StateImage: Equatable {
    var text: String?
    var bytes: [UInt8] = []

    /// How `self` and `other` differ, for a failure message.
    func difference(from other: StateImage) -> String {
        if let text, let theirs = other.text { return "\"\(Self.clip(text))\" against \"\(Self.clip(theirs))\"" }
        let common = zip(bytes, other.bytes).prefix { $0 == $1 }.count
        return "snapshots of \(bytes.count) and \(other.bytes.count) bytes, first different at byte \(common)"
    }

    static func clip(_ s: String) -> String { s.count > 120 ? String(s.prefix(120)) + "..." : s }
}
