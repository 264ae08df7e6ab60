import Raft

/// The state machine of the node benchmarks (shared by raft-node-bench and raft-read-bench).
/// Counts commands; the result of each entry is its index.
public final class CountingStateMachine: StateMachine {
    public init() {}

    public var commands: UInt64 = 0

    public func apply(_ entries: ArraySlice<LogEntry>) throws -> [UInt64] {
        var results: [UInt64] = []
        results.reserveCapacity(entries.count)
        for e in entries where e.kind == .command {
            commands += 1
            results.append(e.index.rawValue)
        }
        return results
    }

    public func prepareSnapshot() throws -> UInt64 { commands }

    public static func saveSnapshot(_ context: UInt64, to output: SnapshotOutput) throws {
        try output.write((0..<8).map { UInt8(truncatingIfNeeded: context >> (8 * UInt64($0))) })
    }

    public func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        commands = try input.read(exactly: 8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}
