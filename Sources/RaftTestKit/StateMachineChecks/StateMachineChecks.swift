import Raft

/// Puts your ``StateMachine`` through every rule of its contract, with real ``RaftNode``s,
/// restarts and crashes, and names the rule it breaks.
///
/// Give it a factory for your state machine (called with a fresh directory, or with the
/// directory of an earlier instance to reopen an on-disk state) and a generator of valid
/// commands; ``run()`` runs the checks of ``StateMachineCheck`` in order and returns a
/// ``StateMachineCheckReport``. A failed check says which rule broke, at which index, and what
/// to change (``StateMachineCheckFailure``).
///
/// ```swift
/// let report = await StateMachineChecks.run(
///     make: { environment in try MyStore(directory: environment.directory) },
///     commands: { random in Array("set k\(random.next() % 16) \(random.next() % 100)".utf8) })
/// try report.requirePassed()
/// ```
///
/// It depends on no test framework: from Swift Testing write `#expect(report.passed, "\(report)")`
/// or `try report.requirePassed()`; from XCTest, `XCTAssertTrue(report.passed, "\(report)")`.
///
/// States are compared through their snapshots: two instances hold the same state when
/// ``StateMachine/saveSnapshot(_:to:)`` writes the same bytes for them. A state machine whose
/// snapshot bytes may differ for equal states (a hash table written in iteration order) passes
/// ``describeState``, a description that is equal exactly when the states are. Results are
/// compared with `==` when ``StateMachine/Result`` is `Equatable`, otherwise with the
/// comparison you pass.
///
/// The run is deterministic for a seed (``StateMachineCheckOptions/seed``) except for the thread
/// timing of the runtime check; it takes a few seconds for a small state machine in a debug
/// build. Every file it writes lives in a temporary directory it removes at the end.
public struct StateMachineChecks<SM: StateMachine>: Sendable {
    /// Makes an instance of the state machine for an environment: open (or create) its state in
    /// ``StateMachineEnvironment/directory``. Called once per instance; the instance is then
    /// used from one task at a time, except for ``StateMachine/saveSnapshot(_:to:)``, which
    /// gets only the context.
    public typealias Factory = @Sendable (StateMachineEnvironment) throws -> SM
    /// Makes one valid command from a seeded generator. Commands need not be distinct.
    public typealias CommandGenerator = @Sendable (inout SeededGenerator) -> [UInt8]

    let make: Factory
    let commands: CommandGenerator
    let resultsMatch: @Sendable (SM.Result, SM.Result) -> Bool
    /// Which checks run, how many commands, which seed.
    public var options: StateMachineCheckOptions
    /// A description of an instance's state, equal exactly when two states are equal; `nil`
    /// compares the bytes its snapshot saves. Called between applies, after a sync.
    public var describeState: (@Sendable (SM) throws -> String)?

    /// Creates the checks for a state machine whose results are compared with `resultsMatch`.
    public init(
        make: @escaping Factory, commands: @escaping CommandGenerator, options: StateMachineCheckOptions = StateMachineCheckOptions(),
        describeState: (@Sendable (SM) throws -> String)? = nil, resultsMatch: @escaping @Sendable (SM.Result, SM.Result) -> Bool
    ) {
        self.make = make
        self.commands = commands
        self.options = options
        self.describeState = describeState
        self.resultsMatch = resultsMatch
    }

    /// Runs the selected checks in order; see ``StateMachineCheck``. Never throws: a state
    /// machine that throws, or a directory that cannot be made, is reported as a failure of
    /// the check that met it.
    public func run() async -> StateMachineCheckReport {
        var report = StateMachineCheckReport(seed: options.seed)
        let directory: CheckDirectory
        do { directory = try CheckDirectory(parent: options.temporaryDirectory) } catch {
            let failure = StateMachineCheckFailure(
                .determinism, "the checks could not make their temporary directory: \(error.message)",
                fix: "set StateMachineCheckOptions.temporaryDirectory to a writable directory")
            report.results.append(.init(check: .determinism, outcome: .failed(failure), notes: [], duration: .zero))
            return report
        }
        defer { if !options.keepFiles { directory.remove() } }
        let context = CheckRun(checks: self, directory: directory)
        for check in StateMachineCheck.allCases {
            let started = ContinuousClock.now
            var notes: [String] = []
            let outcome: StateMachineCheckReport.Outcome
            if !options.checks.contains(check) {
                outcome = .skipped("not selected")
            } else if !report.passed && !options.continueAfterFailure {
                outcome = .skipped("an earlier check failed")
            } else {
                do {
                    switch try await context.run(check) {
                    case .passed(let done):
                        notes = done
                        outcome = .passed
                    case .notApplicable(let why):
                        outcome = .skipped(why)
                    }
                } catch {
                    outcome = .failed(error)
                }
            }
            if options.keepFiles && check == StateMachineCheck.allCases.first { notes.append("files kept in \(directory.path)") }
            report.results.append(.init(check: check, outcome: outcome, notes: notes, duration: ContinuousClock.now - started))
        }
        return report
    }

    /// Runs the checks of a state machine whose results are compared with `resultsMatch`; see
    /// ``run()``.
    public static func run(
        make: @escaping Factory, commands: @escaping CommandGenerator, options: StateMachineCheckOptions = StateMachineCheckOptions(),
        describeState: (@Sendable (SM) throws -> String)? = nil, resultsMatch: @escaping @Sendable (SM.Result, SM.Result) -> Bool
    ) async -> StateMachineCheckReport {
        await StateMachineChecks(make: make, commands: commands, options: options, describeState: describeState, resultsMatch: resultsMatch)
            .run()
    }
}

extension StateMachineChecks where SM.Result: Equatable {
    /// Creates the checks for a state machine whose results are compared with `==`.
    public init(
        make: @escaping Factory, commands: @escaping CommandGenerator, options: StateMachineCheckOptions = StateMachineCheckOptions(),
        describeState: (@Sendable (SM) throws -> String)? = nil
    ) {
        self.init(make: make, commands: commands, options: options, describeState: describeState, resultsMatch: { $0 == $1 })
    }

    /// Runs the checks of a state machine whose results are compared with `==`; see ``run()``.
    public static func run(
        make: @escaping Factory, commands: @escaping CommandGenerator, options: StateMachineCheckOptions = StateMachineCheckOptions(),
        describeState: (@Sendable (SM) throws -> String)? = nil
    ) async -> StateMachineCheckReport {
        await StateMachineChecks(make: make, commands: commands, options: options, describeState: describeState).run()
    }
}
