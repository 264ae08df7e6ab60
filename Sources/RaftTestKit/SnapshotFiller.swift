import Raft

/// Bytes that make a test's snapshot as large as it needs, without the state machine holding
/// them: written to a ``Raft/SnapshotOutput`` and read back from a ``Raft/SnapshotInput`` one
/// 64 KiB block at a time, every byte checked on the way back.
///
/// Use it to test (or measure) that large snapshots are streamed end to end: a state machine
/// that "holds" a gigabyte writes it with ``write(_:to:)`` in its `saveSnapshot` and reads it with
/// ``readAndCheck(from:)`` in its `recoverSnapshot`, after its own data.
///
/// ```swift
/// static func saveSnapshot(_ context: Context, to output: SnapshotOutput) throws {
///     try output.write(context.header)
///     try SnapshotFiller.write(1 << 30, to: output)
/// }
/// ```
///
/// The filler is a fixed pattern in which each block begins with its offset (8 bytes, big
/// endian), so a block lost, repeated, reordered or changed is noticed.
public enum SnapshotFiller {
    /// The size of a block: what is written, and read, at once.
    public static let blockBytes = 64 << 10

    static let pattern: [UInt8] = (0..<blockBytes).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 11) }

    /// The `count` bytes of filler that begin at `offset` (a multiple of ``blockBytes``).
    public static func block(at offset: Int, count: Int) -> [UInt8] {
        var b = Array(pattern[0..<min(max(count, 0), blockBytes)])
        for k in 0..<min(8, b.count) { b[k] = UInt8(truncatingIfNeeded: UInt64(offset) >> (56 - 8 * UInt64(k))) }
        return b
    }

    /// Writes `count` bytes of filler to `output`, a block at a time.
    public static func write(_ count: Int, to output: SnapshotOutput) throws(RaftError) {
        var written = 0
        while written < count {
            let b = block(at: written, count: min(blockBytes, count - written))
            try output.write(b)
            written += b.count
        }
    }

    /// Reads `input` to its end as filler, a block at a time, and returns how many bytes there
    /// were.
    ///
    /// - Throws: ``Raft/RaftError/Code/corruption`` at the first byte that is not the filler's.
    public static func readAndCheck(from input: SnapshotInput) throws(RaftError) -> Int {
        var count = 0
        while true {
            let b = try input.read(upTo: blockBytes)
            if b.isEmpty { return count }
            guard b == block(at: count, count: b.count) else {
                throw RaftError(.corruption, "the snapshot's filler differs from the expected one in the block at byte \(count)")
            }
            count += b.count
        }
    }
}
