/// The identity of one member of a Raft cluster.
///
/// Zero is reserved: it means "no node" (no leader known, no vote cast) and is refused as a
/// member id by configuration validation.
public struct NodeID: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The numeric identity.
    public var rawValue: UInt64

    /// Creates an id from its numeric value.
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Creates an id from an integer literal, so tests can write `let leader: NodeID = 1`.
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// "No node": no leader known, no vote cast.
    public static let none = NodeID(rawValue: 0)

    /// Whether this is the reserved "no node" value.
    @inlinable public var isNone: Bool { rawValue == 0 }

    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// A Raft term: a logical clock that only moves forward (Raft paper §5.1).
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    /// The numeric term.
    public var rawValue: UInt64

    /// Creates a term from its numeric value.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Creates a term from an integer literal.
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// Term zero: before any election. No entry is ever written in term zero.
    public static let zero = Term(rawValue: 0)

    /// The term after this one.
    @inlinable public var next: Term { Term(rawValue: rawValue + 1) }

    @inlinable public static func < (lhs: Term, rhs: Term) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// The position of an entry in the replicated log. The first entry has index 1; index zero is
/// the empty log.
public struct LogIndex: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible, Strideable
{
    /// The numeric index.
    public var rawValue: UInt64

    /// Creates an index from its numeric value.
    @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// Creates an index from an integer literal.
    public init(integerLiteral value: UInt64) { self.rawValue = value }

    /// The empty log's last index.
    public static let zero = LogIndex(rawValue: 0)

    @inlinable public static func < (lhs: LogIndex, rhs: LogIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    /// Compares the raw values. Declared so that `Strideable`'s default `==`, which goes through
    /// ``distance(to:)`` and traps on indexes above `Int.max`, is never used: an index decoded
    /// from a peer's bytes may be any 64-bit value, and comparing it must not crash the process.
    @inlinable public static func == (lhs: LogIndex, rhs: LogIndex) -> Bool { lhs.rawValue == rhs.rawValue }
    public var description: String { String(rawValue) }

    /// The distance to another index, as an entry count.
    @inlinable public func distance(to other: LogIndex) -> Int { Int(other.rawValue) - Int(rawValue) }

    /// The index `n` entries further on (`n` may be negative).
    @inlinable public func advanced(by n: Int) -> LogIndex {
        LogIndex(rawValue: UInt64(Int(rawValue) + n))
    }

    /// `index + n` with an unsigned count.
    @inlinable public static func + (lhs: LogIndex, rhs: UInt64) -> LogIndex { LogIndex(rawValue: lhs.rawValue + rhs) }
    /// `index - n` with an unsigned count. Callers guarantee `n <= index`.
    @inlinable public static func - (lhs: LogIndex, rhs: UInt64) -> LogIndex { LogIndex(rawValue: lhs.rawValue - rhs) }
}
