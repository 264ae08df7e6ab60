import Foundation
import Raft
import Testing

@testable import KVStore

/// A real `kill -9` between applying and recording: the applier process
/// (Sources/kvstore-crash-applier) writes batches until it is killed at a random moment; the
/// reopened database must hold exactly the state at the index it reports.
@Suite struct SQLiteCrashTests {
    @Test func aKilledApplierNeverLeavesTheIndexAndTheDataOutOfStep() async throws {
        let applier = try #require(siblingExecutable("kvstore-crash-applier"), "kvstore-crash-applier is not next to the test binary: `swift build --build-tests` builds it")
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path + "/kv.sqlite"
        var random = SeededGenerator(seed: 13)
        var indexes: [UInt64] = []
        for round in 0..<5 {
            let child = try ChildProcess(executable: applier, arguments: [path, "\(1 + random.next() % 7)"], stderr: .file(dir.path + "/applier.log"))
            try await Task.sleep(for: .milliseconds(150 + Int(random.next() % 250)))
            child.signal(SIGKILL)
            let exit = child.waitForExit()
            #expect(exit == .signalled(SIGKILL), "round \(round): the applier \(exit) before it was killed: \((try? String(contentsOfFile: dir.path + "/applier.log", encoding: .utf8)) ?? "")")

            let machine = try SQLiteStateMachine(path: path)
            let index = try machine.openState().rawValue
            indexes.append(index)
            for k in 0..<UInt64(16) {
                // The largest n <= index with n % 16 == k, if any (entries start at 1).
                let n = index >= k ? index - (index - k) % 16 : 0
                let expected: UInt64? = n >= 1 ? n : nil
                let value = try machine.value(forKey: "k\(k)".bytes)
                #expect(value == expected.map { "\($0)".bytes }, "round \(round): at index \(index), key k\(k) holds \(value.map { String(decoding: $0, as: UTF8.self) } ?? "nothing")")
            }
            #expect(try machine.count() == Int(min(index, 16)))
        }
        #expect(indexes.last ?? 0 > 0, "the applier applied nothing in five runs: \(indexes)")
        #expect(indexes == indexes.sorted(), "a committed index went backwards across kills (a process crash keeps what SQLite committed): \(indexes)")
    }
}

/// An executable SwiftPM built next to the test binary (`.build/<configuration>/`).
func siblingExecutable(_ name: String) -> String? {
    var dirs: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { dirs.append(b.bundleURL.deletingLastPathComponent()) }
    return dirs.map { $0.appendingPathComponent(name).path }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
