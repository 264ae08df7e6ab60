import Foundation
import Raft
import RaftTestKit
import Synchronization
import Testing

/// Commands for the key-value machines: `k<0...7>=<0...99>`.
@Sendable func kvCommand(_ random: inout SeededGenerator) -> [UInt8] {
    Array("k\(random.next() % 8)=\(random.next() % 100)".utf8)
}

/// A key-value state machine on disk: the values and the applied index in one file, replaced
/// atomically (written beside, renamed over) by `syncState()`; apply changes memory only.
class FileKV: OnDiskStateMachine {
    let path: String
    var values: [String: String] = [:]
    var appliedIndex: LogIndex = .zero

    init(directory: String) { path = directory + "/kv" }

    func openState() throws -> LogIndex {
        guard let data = FileManager.default.contents(atPath: path) else { return .zero }
        let text = String(decoding: data, as: UTF8.self)
        guard let newline = text.firstIndex(of: "\n"), let index = UInt64(text[..<newline]) else {
            throw RaftError(.corruption, "\(path) does not start with an index line")
        }
        appliedIndex = LogIndex(rawValue: index)
        values = decodeKV(Array(text[text.index(after: newline)...].utf8))
        return appliedIndex
    }

    func syncState() throws { try write(index: appliedIndex, values: values) }

    func write(index: LogIndex, values: [String: String]) throws {
        try Data(Array("\(index.rawValue)\n".utf8) + encodeKV(values)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        var results: [String] = []
        for e in entries {
            appliedIndex = e.index
            guard e.kind == .command else { continue }
            let parts = String(decoding: e.data, as: UTF8.self).split(separator: "=", maxSplits: 1).map(String.init)
            results.append(values[parts[0]] ?? "")
            values[parts[0]] = parts[1]
        }
        return results
    }

    func prepareSnapshot() throws -> [String: String] { values }

    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try output.write(encodeKV(context)) }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        values = decodeKV(try input.readAll())
        appliedIndex = metadata.index
        try syncState()
    }
}

/// Broken: every apply stamps the value with a counter shared by all instances.
final class StampingKV: StateMachine {
    static let stamps = Atomic<Int>(0)
    var values: [String: String] = [:]

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        entries.filter { $0.kind == .command }.map { e in
            let parts = String(decoding: e.data, as: UTF8.self).split(separator: "=", maxSplits: 1).map(String.init)
            let stamp = Self.stamps.wrappingAdd(1, ordering: .relaxed).newValue
            let old = values[parts[0]] ?? ""
            values[parts[0]] = "\(parts[1])@\(stamp)"
            return old
        }
    }

    func prepareSnapshot() throws -> [String: String] { values }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try output.write(encodeKV(context)) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { values = decodeKV(try input.readAll()) }
}

/// The live values of ``LiveSnapshotKV``, behind a lock: what it hands over as its snapshot
/// context (a reference, not a copy).
final class LiveValues: Sendable {
    let values = Mutex<[String: String]>([:])
}

/// Broken: the snapshot context is the live state, so entries applied after
/// `prepareSnapshot()` leak into the snapshot.
final class LiveSnapshotKV: StateMachine {
    let live = LiveValues()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        entries.filter { $0.kind == .command }.map { e in
            let parts = String(decoding: e.data, as: UTF8.self).split(separator: "=", maxSplits: 1).map(String.init)
            return live.values.withLock { v in
                let old = v[parts[0]] ?? ""
                v[parts[0]] = parts[1]
                return old
            }
        }
    }

    func prepareSnapshot() throws -> LiveValues { live }
    static func saveSnapshot(_ context: LiveValues, to output: SnapshotOutput) throws { try output.write(encodeKV(context.values.withLock { $0 })) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        let restored = decodeKV(try input.readAll())
        live.values.withLock { $0 = restored }
    }
}

/// Broken: the data is written at every apply, the applied index apart from it, at sync; a
/// crash leaves the data ahead of its index.
final class SplitIndexKV: FileKV {
    var indexPath: String { path + ".index" }

    override func openState() throws -> LogIndex {
        _ = try super.openState()
        let stored = FileManager.default.contents(atPath: indexPath).flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0
        appliedIndex = LogIndex(rawValue: stored)
        return appliedIndex
    }

    override func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        let results = try super.apply(entries)
        try write(index: .zero, values: values)
        return results
    }

    override func syncState() throws {
        try write(index: .zero, values: values)
        try Data("\(appliedIndex.rawValue)".utf8).write(to: URL(fileURLWithPath: indexPath), options: .atomic)
    }
}

/// Broken: recovering a snapshot records its index but keeps the old values.
final class IgnoresSnapshotKV: StateMachine {
    let inner = KVMachine()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] { try inner.apply(entries) }
    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot() }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try KVMachine.saveSnapshot(context, to: output) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { _ = try input.readAll() }
}

/// Broken: a result for every entry, no-ops included.
final class NoopResultKV: StateMachine {
    let inner = KVMachine()

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        try entries.flatMap { e in e.kind == .noop ? ["noop"] : try inner.apply([e][...]) }
    }
    func prepareSnapshot() throws -> [String: String] { try inner.prepareSnapshot() }
    static func saveSnapshot(_ context: [String: String], to output: SnapshotOutput) throws { try KVMachine.saveSnapshot(context, to: output) }
    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws { try inner.recoverSnapshot(from: input, metadata: metadata) }
}

/// Broken: the applied index counts commands only, so it lags the log by the no-ops.
final class CommandIndexKV: FileKV {
    override func apply(_ entries: ArraySlice<LogEntry>) throws -> [String] {
        let before = appliedIndex
        let results = try super.apply(entries)
        appliedIndex = before + UInt64(results.count)
        return results
    }
}

@Suite("State machine checks")
struct StateMachineChecksTests {
    @Test func correctInMemoryMachinePasses() async throws {
        let report = await StateMachineChecks.run(make: { _ in KVMachine() }, commands: kvCommand)
        #expect(report.passed, "\(report)")
        #expect(report.outcome(of: .onDiskAppliedIndex) == .skipped("an in-memory state machine (openDurableState() returns nil)"))
        for check in StateMachineCheck.allCases where check != .onDiskAppliedIndex {
            #expect(report.outcome(of: check) == .passed, "\(check): \(report)")
        }
        print(report)
    }

    @Test func correctOnDiskMachinePasses() async throws {
        let report = await StateMachineChecks.run(make: { env in FileKV(directory: env.directory) }, commands: kvCommand)
        #expect(report.passed, "\(report)")
        for check in StateMachineCheck.allCases { #expect(report.outcome(of: check) == .passed, "\(check): \(report)") }
        print(report)
    }

    /// States compared by a description instead of snapshot bytes.
    @Test func describedStatesAreCompared() async throws {
        var options = StateMachineCheckOptions()
        options.checks = [.determinism, .snapshotRoundTrip, .snapshotIsolation, .onDiskAppliedIndex]
        let report = await StateMachineChecks.run(
            make: { env in FileKV(directory: env.directory) }, commands: kvCommand, options: options,
            describeState: { m in "\(m.appliedIndex) \(m.values.sorted { $0.key < $1.key })" })
        #expect(report.passed, "\(report)")
        #expect(report.outcome(of: .runtime) == .skipped("not selected"))
    }

    @Test func nonDeterministicApplyFailsDeterminism() async throws {
        let report = await StateMachineChecks.run(make: { _ in StampingKV() }, commands: kvCommand)
        print(report)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .determinism, "\(failure)")
        #expect(failure.index != nil)
        #expect(failure.fix.contains("no clock, random numbers, global or static state"), "\(failure)")
        #expect(report.outcome(of: .runtime) == .skipped("an earlier check failed"))
        #expect(throws: StateMachineCheckFailure.self) { try report.requirePassed() }
    }

    @Test func snapshotReadingLiveStateFailsIsolation() async throws {
        var options = StateMachineCheckOptions()
        options.continueAfterFailure = true
        options.checks = [.determinism, .snapshotRoundTrip, .snapshotIsolation]
        let report = await StateMachineChecks.run(make: { _ in LiveSnapshotKV() }, commands: kvCommand, options: options)
        #expect(report.outcome(of: .determinism) == .passed, "\(report)")
        #expect(report.outcome(of: .snapshotRoundTrip) == .passed, "\(report)")
        print(report)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .snapshotIsolation, "\(failure)")
        #expect(failure.problem.contains("it matches the state at index"), "\(failure)")
        #expect(failure.fix.contains("point-in-time"), "\(failure)")
    }

    @Test func indexWrittenApartFromDataFailsOnDiskAppliedIndex() async throws {
        let report = await StateMachineChecks.run(make: { env in SplitIndexKV(directory: env.directory) }, commands: kvCommand)
        #expect(report.outcome(of: .determinism) == .passed, "\(report)")
        #expect(report.outcome(of: .snapshotRoundTrip) == .passed, "\(report)")
        #expect(report.outcome(of: .snapshotIsolation) == .passed, "\(report)")
        print(report)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .onDiskAppliedIndex, "\(failure)")
        #expect(failure.problem.contains("after a crash") && failure.problem.contains("applied twice"), "\(failure)")
        #expect(failure.fix.contains("same atomic write"), "\(failure)")
    }

    @Test func recoverIgnoringTheSnapshotFailsRoundTrip() async throws {
        let report = await StateMachineChecks.run(make: { _ in IgnoresSnapshotKV() }, commands: kvCommand)
        #expect(report.outcome(of: .determinism) == .passed, "\(report)")
        print(report)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .snapshotRoundTrip, "\(failure)")
        #expect(failure.problem.contains("it matches the state at index 0"), "\(failure)")
        #expect(failure.description.hasPrefix("[snapshotRoundTrip] at index "), "\(failure)")
    }

    /// The runtime check on its own catches what the single-instance checks catch first: a
    /// follower that caught up by snapshot, replicas whose apply differs, an index that lags its
    /// data after a node crashed between two syncs (entries fed again give other results).
    @Test(arguments: ["ignores the snapshot", "stamps values", "index apart from data"])
    func runtimeAloneCatchesBrokenMachines(_ broken: String) async throws {
        var options = StateMachineCheckOptions()
        options.checks = [.runtime]
        let report: StateMachineCheckReport
        switch broken {
        case "ignores the snapshot": report = await StateMachineChecks.run(make: { _ in IgnoresSnapshotKV() }, commands: kvCommand, options: options)
        case "stamps values": report = await StateMachineChecks.run(make: { _ in StampingKV() }, commands: kvCommand, options: options)
        default: report = await StateMachineChecks.run(make: { env in SplitIndexKV(directory: env.directory) }, commands: kvCommand, options: options)
        }
        print(report)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .runtime, "\(failure)")
    }

    @Test func resultsForNoopsFailDeterminism() async throws {
        let report = await StateMachineChecks.run(make: { _ in NoopResultKV() }, commands: kvCommand)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .determinism, "\(failure)")
        #expect(failure.index == 1, "\(failure)")
        #expect(failure.problem.contains("returned 1 results for entries 1...1, which hold 0 commands"), "\(failure)")
    }

    @Test func appliedIndexSkippingNoopsFailsOnDiskAppliedIndex() async throws {
        let report = await StateMachineChecks.run(make: { env in CommandIndexKV(directory: env.directory) }, commands: kvCommand)
        let failure = try #require(report.failures.first, "\(report)")
        #expect(failure.check == .onDiskAppliedIndex, "\(failure)")
        #expect(failure.problem.contains("reports applied index 0"), "\(failure)")
        #expect(failure.fix.contains("no-ops included"), "\(failure)")
    }

    /// The run's files are removed at the end, or kept (and named in the report) when asked.
    @Test func temporaryFilesAreRemovedUnlessKept() async throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("smchecks-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        var options = StateMachineCheckOptions()
        options.temporaryDirectory = parent
        options.checks = [.determinism, .onDiskAppliedIndex, .runtime]
        let removed = await StateMachineChecks.run(make: { env in FileKV(directory: env.directory) }, commands: kvCommand, options: options)
        #expect(removed.passed, "\(removed)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent).isEmpty)
        options.keepFiles = true
        options.checks = [.determinism]
        let kept = await StateMachineChecks.run(make: { env in FileKV(directory: env.directory) }, commands: kvCommand, options: options)
        let left = try FileManager.default.contentsOfDirectory(atPath: parent)
        #expect(left.count == 1)
        #expect(kept.results.first?.notes.contains { $0.contains(parent + "/" + (left.first ?? "?")) } == true, "\(kept)")
    }
}
