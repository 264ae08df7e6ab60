import Raft

/// The entry a crash-test writer writes at `(index, term)`, computable again by the checker:
/// a no-op one time in 16, otherwise a command of 0...4096 bytes derived from the position.
public enum CrashPayload {
    /// The entry at `index` in `term`.
    public static func entry(index: UInt64, term: UInt64) -> LogEntry {
        var g = SeededGenerator(seed: index &* 0xD1B5_4A32_D192_ED03 ^ term &* 0x8CB9_2BA7_2F3D_8DD7)
        let h = g.next()
        if h % 16 == 0 { return LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: index), kind: .noop) }
        let size = Int((h >> 8) % 4097)
        var data = [UInt8](repeating: 0, count: size)
        data.withUnsafeMutableBytes { raw in
            var k = 0
            while k < size {
                var v = g.next()
                for _ in 0..<min(8, size - k) {
                    raw[k] = UInt8(truncatingIfNeeded: v)
                    v >>= 8
                    k += 1
                }
            }
        }
        return LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: index), kind: .command, data: data)
    }
}

extension SeededGenerator {
    /// A value in `range` (modulo bias is irrelevant for tests).
    public mutating func next(in range: ClosedRange<UInt64>) -> UInt64 {
        range.lowerBound + next() % (range.upperBound - range.lowerBound + 1)
    }
}
