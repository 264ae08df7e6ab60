import Foundation
import Raft
import RaftTestKit
import Synchronization

/// The benchmark's state machine: it counts commands, and stands for a large state with
/// `filler` bytes that every snapshot carries after the count (RaftTestKit's `SnapshotFiller`:
/// written and read back 64 KiB at a time, every byte checked on recovery). It never holds more
/// than one block.
final class FillerMachine: StateMachine {
    var commands: UInt64 = 0
    let filler: Int
    let recovered: Recovered

    init(filler: Int, recovered: Recovered) {
        self.filler = filler
        self.recovered = recovered
    }

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [UInt64] {
        var results: [UInt64] = []
        for e in entries where e.kind == .command {
            commands += 1
            results.append(e.index.rawValue)
        }
        return results
    }

    func prepareSnapshot() throws -> (commands: UInt64, filler: Int) { (commands, filler) }

    static func saveSnapshot(_ context: (commands: UInt64, filler: Int), to output: SnapshotOutput) throws {
        try output.write((0..<8).map { UInt8(truncatingIfNeeded: context.commands >> (56 - 8 * UInt64($0))) })
        try SnapshotFiller.write(context.filler, to: output)
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        commands = try input.read(exactly: 8).reduce(0) { $0 << 8 | UInt64($1) }
        let bytes = try SnapshotFiller.readAndCheck(from: input)
        recovered.record(bytes)
    }
}

/// The filler bytes of the last snapshot a ``FillerMachine`` recovered from (or -1), for the
/// benchmark to watch from another task.
final class Recovered: Sendable {
    private let bytes = Mutex(-1)
    var value: Int { bytes.withLock { $0 } }
    func record(_ n: Int) { bytes.withLock { $0 = n } }
}

/// This process's resident memory now (VmRSS) and at its highest (VmHWM), from
/// /proc/self/status; zero where there is no such file.
func residentMemory() -> (now: Int, peak: Int) {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return 0 }
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) << 10
    }
    return (field("VmRSS:"), field("VmHWM:"))
}
