import Raft
import Testing

// The README's "Running a replica with your state machine" code, kept here so that it compiles
// and runs. Keep the two in step: a change to one is a change to the other.

enum ReadmeExample {
    // --- README: the Counter state machine, verbatim.
    final class Counter: StateMachine {
        var total = 0
        func apply(_ entries: ArraySlice<LogEntry>) throws -> [Int] {
            // One result per command; no-op entries (a new leader's first) have none.
            entries.filter { $0.kind == .command }.map { e in
                total += Int(e.data.first ?? 0)
                return total
            }
        }
        // Step one, between two applies: a cheap point-in-time copy.
        func prepareSnapshot() throws -> Int { total }
        // Step two, on the snapshot thread, beside apply: static, so it sees only the context.
        static func saveSnapshot(_ context: Int, to output: SnapshotOutput) throws {
            try output.write(Int64(context))          // 8 bytes, little-endian
        }
        func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
            total = Int(try input.readInt64())
        }
    }

    // --- README: starting a node (compiled, not run: it needs a directory and peers).
    static func startNode(directory: String, transport: any RaftTransport) async throws -> Int {
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1),
            storage: FileLogStorage(directory: directory, voters: [1, 2, 3]),
            stateMachine: Counter(), transport: transport)
        // Run it in a ServiceGroup (or `try await node.run()`), then:
        let total = try await node.propose([5])   // the state machine's result, once committed
        // Linearizable on any node (ReadIndex: one heartbeat round to a quorum, no log entry):
        let now = try await node.read { counter in counter.total }
        // With RaftConfiguration.readLease set: no round while the leader's lease holds.
        let fast = try await node.read(.lease) { counter in counter.total }
        // This node's state as it is, possibly behind.
        let local = try await node.read(.stale) { counter in counter.total }
        return total + now + fast + local
    }

    // --- README: changing the membership (compiled, not run: it needs a cluster).
    static func changeMembership(leader: RaftNode<Counter>) async throws {
        // Replace failed node 3 by node 4, which starts with an empty data directory:
        try await leader.addVoter(4, address: "10.0.0.4:7000")   // a learner first, caught up, then promoted
        try await leader.remove(3)
        // Several changes at once go through joint consensus:
        try await leader.changeMembership([.promote(5), .remove(2)])
        // Move leadership off a node before maintenance:
        try await leader.transferLeadership(to: 2)
    }

    // --- README: the typed helpers on a [String: [UInt8]] map.
    static func save(_ map: [String: [UInt8]], to output: SnapshotOutput) throws {
        // A [String: [UInt8]] map: its size, then each key and value.
        try output.write(UInt64(map.count))
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            try output.write(lengthPrefixed: key)
            try output.write(lengthPrefixed: value)
        }
    }

    static func load(from input: SnapshotInput) throws -> [String: [UInt8]] {
        var map: [String: [UInt8]] = [:]
        // ... and back:
        let count = try input.readUInt64()
        for _ in 0..<count {
            let key = try input.readLengthPrefixedString(maxLength: 1_024)
            map[key] = try input.readLengthPrefixedBytes(maxLength: 1 << 20)
        }
        return map
    }
}

@Suite("README examples")
struct ReadmeExampleTests {
    /// The Counter's snapshot goes through a real snapshot file and restores its total.
    @Test func counterSnapshotRoundTrip() throws {
        let counter = ReadmeExample.Counter()
        let entries = (1...3).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [UInt8($0 * 10)]) }
        #expect(try counter.apply(entries[...]) == [10, 30, 60])

        let dir = TempDirectory()
        let storage = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        try storage.append(entries)
        try storage.sync()
        let output = try storage.beginSnapshot(at: 3, confState: nil)
        try ReadmeExample.Counter.saveSnapshot(try counter.prepareSnapshot(), to: output)
        let metadata = try storage.finishSnapshot(output)

        let restored = ReadmeExample.Counter()
        try restored.recoverSnapshot(from: try storage.openSnapshot(), metadata: metadata)
        #expect(restored.total == 60)
        storage.close()
    }

    /// The map snippet round-trips, and refuses a key longer than its limit.
    @Test func mapSnippetRoundTrip() throws {
        let map: [String: [UInt8]] = ["a": [], "key": [1, 2, 3], "ünïcode": Array(repeating: 7, count: 5_000)]
        let output = SnapshotOutput(inMemory: SnapshotMetadata(index: 1, term: 1, confState: ConfState(voters: [1])))
        try ReadmeExample.save(map, to: output)
        #expect(try ReadmeExample.load(from: SnapshotInput(output.data)) == map)

        let hostile = SnapshotOutput(inMemory: SnapshotMetadata(index: 1, term: 1, confState: ConfState(voters: [1])))
        try hostile.write(UInt64(1))
        try hostile.write(lengthPrefixed: String(repeating: "k", count: 2_000))
        try hostile.write(lengthPrefixed: [1, 2, 3])
        let error = #expect(throws: RaftError.self) { try ReadmeExample.load(from: SnapshotInput(hostile.data)) }
        #expect(error?.code == .corruption)
        #expect(error?.message.contains("exceeds the maximum of 1024") == true)
    }
}
