import Foundation
import KVFaults
import Testing

/// Fault-injection runs of the real `kvstore` binary (``KVFaults/FaultRun``): three processes,
/// clients doing gets, puts, deletes and compare-and-swaps, and SIGKILLs, pauses, partitions
/// (network namespaces when the test runs as root), forced snapshots, a membership change and
/// a full disk at random. Every run's history must be linearizable, the state machines must
/// converge to the same data, and no process may end but by an injected fault.
///
/// CI runs 6 runs of 30 s; `KVSTORE_FAULT_RUNS` and `KVSTORE_FAULT_SECONDS` change that (an
/// hour: 100 runs of 30 s), `KVSTORE_FAULT_SEED` fixes the first seed (default: the time).
@Suite(.serialized) struct KVFaultTests {
    @Test func runsUnderFaultsStayLinearizableAndConverge() async throws {
        let kvstore = try #require(siblingExecutable("kvstore"), "kvstore is not next to the test binary: `swift build --build-tests` builds it")
        let environment = ProcessInfo.processInfo.environment
        let runs = environment["KVSTORE_FAULT_RUNS"].flatMap(Int.init) ?? 6
        let seconds = environment["KVSTORE_FAULT_SECONDS"].flatMap(Int.init) ?? 30
        let firstSeed = environment["KVSTORE_FAULT_SEED"].flatMap(UInt64.init) ?? UInt64(Date().timeIntervalSince1970)
        var failed: [String] = []
        for n in 0..<runs {
            var options = FaultRunOptions(kvstore: kvstore)
            options.seed = firstSeed &+ UInt64(n)
            options.duration = .seconds(seconds)
            let report = try await FaultRun(options).run()
            print(report)
            // Every run must have exercised what it claims: operations checked, faults injected.
            #expect(report.operations > 100, "seed \(options.seed): only \(report.operations) operations were checked")
            #expect((report.faults["kill"] ?? 0) + (report.faults["pause"] ?? 0) > 0, "seed \(options.seed): no process faults were injected")
            if !report.passed { failed.append("\(report)") }
        }
        #expect(failed.isEmpty, "\(failed.count) of \(runs) fault runs failed:\n\(failed.joined(separator: "\n"))")
    }
}
