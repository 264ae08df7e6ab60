import Raft

/// One change to the key-value store, as it travels through the Raft log.
///
/// The encoding is a tag byte followed by length-prefixed fields (lengths are 4-byte big-endian):
///
/// | tag | command | fields |
/// | --- | --- | --- |
/// | 1 | ``put(key:value:)`` | key, value |
/// | 2 | ``delete(key:)`` | key |
/// | 3 | ``compareAndSwap(key:expected:new:)`` | key, expected, new |
///
/// Keys and values are bytes; the HTTP API gives keys as UTF-8 path segments.
public enum KVCommand: Sendable, Hashable {
    /// Sets `key` to `value`.
    case put(key: [UInt8], value: [UInt8])
    /// Removes `key`.
    case delete(key: [UInt8])
    /// Sets `key` to `new` if its current value is exactly `expected`.
    case compareAndSwap(key: [UInt8], expected: [UInt8], new: [UInt8])

    /// The key the command changes.
    public var key: [UInt8] {
        switch self {
        case .put(let key, _), .delete(let key), .compareAndSwap(let key, _, _): key
        }
    }

    /// The command as log entry data.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        func field(_ bytes: [UInt8]) {
            let n = UInt32(bytes.count)
            out += [UInt8(n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
            out += bytes
        }
        switch self {
        case .put(let key, let value):
            out.append(1)
            field(key)
            field(value)
        case .delete(let key):
            out.append(2)
            field(key)
        case .compareAndSwap(let key, let expected, let new):
            out.append(3)
            field(key)
            field(expected)
            field(new)
        }
        return out
    }

    /// Decodes log entry data.
    ///
    /// - Throws: ``Raft/RaftError/Code/invalidArgument`` for bytes that are not a command (an
    ///   unknown tag, a field running past the end, bytes left over).
    public init(decoding data: [UInt8]) throws(RaftError) {
        var at = 1
        func field() throws(RaftError) -> [UInt8] {
            guard data.count - at >= 4 else { throw RaftError(.invalidArgument, "a KV command ends inside a field length") }
            let n = data[at..<at + 4].reduce(0) { ($0 << 8) | Int($1) }
            at += 4
            guard data.count - at >= n else { throw RaftError(.invalidArgument, "a KV command field of \(n) bytes runs past the end") }
            defer { at += n }
            return Array(data[at..<at + n])
        }
        guard let tag = data.first else { throw RaftError(.invalidArgument, "an empty KV command") }
        switch tag {
        case 1: self = .put(key: try field(), value: try field())
        case 2: self = .delete(key: try field())
        case 3: self = .compareAndSwap(key: try field(), expected: try field(), new: try field())
        default: throw RaftError(.invalidArgument, "unknown KV command tag \(tag)")
        }
        guard at == data.count else { throw RaftError(.invalidArgument, "\(data.count - at) bytes after a KV command") }
    }
}

/// What applying one ``KVCommand`` did.
public enum KVResult: Sendable, Hashable {
    /// A put stored its value.
    case stored
    /// A delete removed the key (`existed` is `false` when there was nothing to remove).
    case deleted(existed: Bool)
    /// A compare-and-swap found the expected value and stored the new one.
    case swapped
    /// A compare-and-swap found another value (`nil`: the key is absent); nothing changed.
    case mismatch(current: [UInt8]?)
    /// The entry was not a command this store understands; nothing changed. (The state machine
    /// answers rather than throws: a throw would stop every replica on the same entry.)
    case rejected(reason: String)
}
