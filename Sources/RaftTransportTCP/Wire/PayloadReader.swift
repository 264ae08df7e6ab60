import NIOCore
import Raft

/// Reads a frame's payload; every read is bounds-checked and fails with a typed error, and
/// every form is checked to be the only one its value has (shortest varints, flags set only for
/// what follows), so a payload that decodes re-encodes to the same bytes.
struct PayloadReader {
    var buffer: ByteBuffer
    let kind: WireFormat.FrameKind

    func malformed(_ what: String) -> RaftError {
        RaftError(.invalidMessage, "malformed \(kind) frame: \(what)")
    }

    mutating func u8() throws(RaftError) -> UInt8 {
        guard let v = buffer.readInteger(as: UInt8.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func u32() throws(RaftError) -> UInt32 {
        guard let v = buffer.readInteger(as: UInt32.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func u64() throws(RaftError) -> UInt64 {
        guard let v = buffer.readInteger(as: UInt64.self) else { throw malformed("payload ends early") }
        return v
    }

    mutating func bool(_ field: String) throws(RaftError) -> Bool {
        switch try u8() {
        case 0: return false
        case 1: return true
        case let v: throw malformed("\(field) is \(v), not 0 or 1")
        }
    }

    /// A flags byte, refused when a bit outside `known` is set.
    mutating func flags(_ field: String, known: UInt8) throws(RaftError) -> UInt8 {
        let flags = try u8()
        guard flags & ~known == 0 else { throw malformed("unknown \(field) flags 0x\(String(flags, radix: 16))") }
        return flags
    }

    mutating func index(_ field: String) throws(RaftError) -> LogIndex { LogIndex(rawValue: try varint(field)) }

    mutating func term(_ field: String) throws(RaftError) -> Term { Term(rawValue: try varint(field)) }

    /// `count` bytes; the count is checked against what the payload holds before allocating.
    mutating func bytes(_ count: UInt64, _ field: String) throws(RaftError) -> [UInt8] {
        guard count <= UInt64(buffer.readableBytes) else {
            throw malformed("\(field) of \(count) bytes is longer than the \(buffer.readableBytes) bytes left")
        }
        return buffer.readBytes(length: Int(count))!
    }

    /// A varint length, then that many bytes.
    mutating func lengthPrefixed(_ field: String) throws(RaftError) -> [UInt8] {
        try bytes(try varint("the length of \(field)"), field)
    }

    /// A varint count of items of at least `minimumSize` bytes each, checked against what is
    /// left before any array is reserved for them.
    mutating func count(_ field: String, minimumSize: Int) throws(RaftError) -> Int {
        let n = try varint("the count of \(field)")
        guard n <= UInt64(buffer.readableBytes / minimumSize) else {
            throw malformed("\(n) \(field) cannot fit in the \(buffer.readableBytes) bytes left")
        }
        return Int(n)
    }

    func finish() throws(RaftError) {
        guard buffer.readableBytes == 0 else { throw malformed("\(buffer.readableBytes) bytes left over after the payload") }
    }

    mutating func frame() throws(RaftError) -> WireFrame {
        if kind == .hello { return .hello(try hello()) }
        let from = NodeID(rawValue: try varint("from"))
        let to = NodeID(rawValue: try varint("to"))
        let term = try self.term("term")
        return .message(Message(from: from, to: to, term: term, kind: try messageKind(term: term)))
    }

    /// A hello's fixed layout (the same in every version).
    mutating func hello() throws(RaftError) -> Hello {
        let version = try u8()
        let laneByte = try u8()
        guard let lane = Hello.Lane(rawValue: laneByte) else { throw malformed("unknown lane \(laneByte)") }
        let sender = NodeID(rawValue: try u64())
        let receiver = NodeID(rawValue: try u64())
        let idBytes = try bytes(UInt64(try u8()), "cluster id")
        guard let clusterID = String(validating: idBytes, as: UTF8.self) else { throw malformed("the cluster id is not UTF-8") }
        return Hello(clusterID: clusterID, sender: sender, receiver: receiver, version: version, lane: lane)
    }
}
