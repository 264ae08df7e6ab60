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
        // As root (CI) the runs must use what root allows: partitions and full disks.
        let root = geteuid() == 0
        var failed: [String] = []
        var totals: [String: Int] = [:]
        for n in 0..<runs {
            var options = FaultRunOptions(kvstore: kvstore)
            options.seed = firstSeed &+ UInt64(n)
            options.duration = .seconds(seconds)
            let report = try await FaultRun(options).run()
            print(report)
            // A run passes only if it checked something: enough writes that returned, few whose
            // outcome is unknown (each unknown write can explain away a lost one), faults injected.
            let seed = options.seed
            #expect(report.completedWrites >= 100, "seed \(seed): only \(report.completedWrites) writes returned")
            #expect(report.unknownOperations * 5 <= report.completedWrites + report.unknownOperations, "seed \(seed): \(report.unknownOperations) of \(report.completedWrites + report.unknownOperations) writes have an unknown outcome")
            #expect((report.faults["kill"] ?? 0) + (report.faults["pause"] ?? 0) > 0, "seed \(seed): no process faults were injected")
            if root {
                #expect(report.network.hasPrefix("namespaces"), "seed \(seed): as root the nodes must get network namespaces: \(report.network)")
                #expect(report.faults["disk-full"] == 1, "seed \(seed): as root a disk must fill up: \(report.events)")
            }
            for (kind, count) in report.faults { totals[kind, default: 0] += count }
            totals["diskFullAnswers", default: 0] += report.diskFullAnswers
            if !report.passed { failed.append("\(report)") }
        }
        #expect(failed.isEmpty, "\(failed.count) of \(runs) fault runs failed:\n\(failed.joined(separator: "\n"))")
        // Over all runs: the membership change completed at least once, and a full disk was
        // seen answering 503 diskFull (a run whose filled node had nothing to write shows none).
        #expect(totals["member-added", default: 0] > 0 && totals["member-removed", default: 0] > 0, "no membership change completed: \(totals)")
        if root && runs >= 3 { #expect(totals["diskFullAnswers", default: 0] > 0, "no client saw 503 diskFull in \(runs) runs: \(totals)") }
    }
}
