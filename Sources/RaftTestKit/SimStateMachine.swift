import Raft

/// The state machine every simulated node runs (beside a user's, when the cluster runs one): a
/// running hash of every applied entry.
///
/// Two nodes that applied the same entries in the same order hold the same hash, so comparing
/// hashes per index checks state machine safety (§5.4.3) at no cost. The hash of a log prefix is
/// computed the same way (``SimStateMachine/chain(_:_:)``), so log and state can be compared.
public struct SimStateMachine: Sendable, Hashable {
    /// Index of the last applied entry.
    public var applied: LogIndex = .zero
    /// Running hash of entries `1...applied`.
    public var hash: UInt64 = SimStateMachine.seed
    /// Commands applied (no-ops excluded), newest last, for liveness checks.
    public var lastCommand: [UInt8] = []

    /// The hash of the empty log.
    public static let seed: UInt64 = 0xCBF2_9CE4_8422_2325

    /// Creates an empty state machine.
    public init() {}

    /// Extends a prefix hash with one entry.
    public static func chain(_ h: UInt64, _ e: LogEntry) -> UInt64 {
        var x = h
        @inline(__always) func mix(_ v: UInt64) {
            x ^= v
            x = x &* 0x0000_0100_0000_01B3
            x ^= x >> 29
        }
        mix(e.index.rawValue)
        mix(e.term.rawValue)
        mix(UInt64(e.kind.rawValue))
        mix(UInt64(e.data.count))
        for b in e.data { mix(UInt64(b)) }
        return x
    }

    /// Applies one committed entry. Returns `false` on a gap (a library bug the checker reports).
    public mutating func apply(_ e: LogEntry) -> Bool {
        guard e.index == applied + 1 else { return false }
        hash = Self.chain(hash, e)
        applied = e.index
        if e.kind == .command { lastCommand = e.data }
        return true
    }

    /// Serializes the state into snapshot data (16 bytes, little endian).
    public var snapshotData: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for v in [applied.rawValue, hash] {
            for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
        }
        return out
    }

    /// Restores from snapshot data written by ``snapshotData``; `nil` if malformed.
    public init?(snapshotData d: [UInt8]) {
        guard d.count == 16 else { return nil }
        func read(_ o: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(d[o + k]) << (8 * UInt64(k)) }
            return v
        }
        applied = LogIndex(rawValue: read(0))
        hash = read(8)
    }
}
