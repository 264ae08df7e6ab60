import Foundation
import RaftTestKit
import Testing

/// Runs every `testdata/*.txt` scenario and compares its output with the file.
/// `RAFT_REWRITE=1 swift test --filter ScenarioTests` rewrites the files with the actual output
/// (review the diff before committing it).
@Suite("Scenarios")
struct ScenarioTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata")

    static var files: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".txt") }.sorted()
    }

    @Test func thereAreEnoughScenarios() {
        #expect(Self.files.count >= 20)
    }

    @Test(arguments: files)
    func scenario(_ name: String) throws {
        let url = Self.directory.appendingPathComponent(name)
        let expected = try String(contentsOf: url, encoding: .utf8)
        let actual = try ScenarioRunner().run(expected)
        if ProcessInfo.processInfo.environment["RAFT_REWRITE"] == "1" {
            try actual.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        if actual != expected {
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            var firstDiff = 0
            while firstDiff < min(e.count, a.count) && e[firstDiff] == a[firstDiff] { firstDiff += 1 }
            let exp = firstDiff < e.count ? String(e[firstDiff]) : "<end of file>"
            let act = firstDiff < a.count ? String(a[firstDiff]) : "<end of file>"
            Issue.record("\(name): first difference at line \(firstDiff + 1)\n  expected: \(exp)\n  actual:   \(act)\nrewrite with RAFT_REWRITE=1 swift test --filter ScenarioTests and review the diff")
        }
    }
}
