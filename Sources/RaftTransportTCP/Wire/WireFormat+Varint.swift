import NIOCore
import Raft

/// Variable-length integers (unsigned LEB128), the form of almost every integer in a message
/// payload since format version 3: seven bits per byte, least significant group first, the top
/// bit set on every byte but the last. A value below 128 takes one byte; `UInt64.max` takes ten.
///
/// Only the shortest form is valid: a decoder refuses a varint that ends in a zero byte (other
/// than the value 0 itself), one longer than ten bytes, and one whose value exceeds 64 bits, so
/// every value has exactly one encoding and a decoded frame re-encodes to the bytes it came from.
extension WireFormat {
    /// The bytes `value` takes as a varint: 1 to 10.
    static func varintSize(_ value: UInt64) -> Int {
        // 64 significant bits at most, 7 per byte; zero still takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }
}

extension ByteBuffer {
    /// Appends `value` as a varint (its shortest form).
    mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(truncatingIfNeeded: v))
    }
}

extension PayloadReader {
    /// A varint, refused unless it is the shortest form of a value that fits 64 bits.
    mutating func varint(_ field: String) throws(RaftError) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<10 {
            guard let byte = buffer.readInteger(as: UInt8.self) else { throw malformed("payload ends inside \(field)") }
            let group = UInt64(byte & 0x7F)
            if i == 9, byte > 1 { throw malformed("\(field) does not fit 64 bits") }
            value |= group << (7 * UInt64(i))
            if byte & 0x80 == 0 {
                if i > 0, byte == 0 { throw malformed("\(field) is not in its shortest form") }
                return value
            }
        }
        // Ten bytes, the tenth with its continuation bit set: `i == 9, byte > 1` threw already.
        throw malformed("\(field) is longer than ten bytes")
    }
}
