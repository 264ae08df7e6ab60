/// CRC-32C (Castagnoli), the checksum of every WAL record and snapshot file, for your own
/// formats too (an on-disk state machine's records, say).
///
/// The standard CRC-32C of iSCSI (RFC 3720), ext4, SSE 4.2's `crc32` instruction and most storage
/// engines: reflected polynomial `0x82F63B78`, initial value and final XOR `0xFFFFFFFF`. The
/// checksum of the ASCII bytes `123456789` is `0xE3069283`.
///
/// ```swift
/// let sum = CRC32C.checksum(record)                  // one buffer
///
/// var crc: UInt32 = 0                                 // or piece by piece
/// crc = CRC32C.update(crc, header)
/// crc = CRC32C.update(crc, body)                      // == CRC32C.checksum(header + body)
/// ```
///
/// Computed in software (slicing-by-8, about eight bytes per table step); pure functions, safe
/// to call from any thread.
public enum CRC32C {
    /// `tables[k][b]`: the CRC of byte `b` followed by `k` zero bytes (slicing-by-8).
    static let tables: [[UInt32]] = {
        var t = Array(repeating: Array(repeating: UInt32(0), count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    /// Extends a checksum over more bytes.
    ///
    /// - Parameters:
    ///   - crc: The checksum of the bytes before these (`0` for none yet).
    ///   - bytes: The next bytes.
    /// - Returns: The checksum of the earlier bytes followed by `bytes`; `update(0, b)` is
    ///   `checksum(b)`.
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        let t = tables
        var i = 0
        let n = bytes.count
        t[0].withUnsafeBufferPointer { t0 in
            t[1].withUnsafeBufferPointer { t1 in
                t[2].withUnsafeBufferPointer { t2 in
                    t[3].withUnsafeBufferPointer { t3 in
                        t[4].withUnsafeBufferPointer { t4 in
                            t[5].withUnsafeBufferPointer { t5 in
                                t[6].withUnsafeBufferPointer { t6 in
                                    t[7].withUnsafeBufferPointer { t7 in
                                        while n - i >= 8 {
                                            let lo = c ^ (UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
                                            let hi = UInt32(bytes[i + 4]) | UInt32(bytes[i + 5]) << 8 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 24
                                            c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                                                ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                                            i += 8
                                        }
                                        while i < n {
                                            c = t0[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                                            i += 1
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return ~c
    }

    /// Extends a checksum over more bytes of any kind (an array, a slice, `string.utf8`).
    ///
    /// Contiguous storage is read in place; other sequences are copied into an array first.
    ///
    /// - Parameters:
    ///   - crc: The checksum of the bytes before these (`0` for none yet).
    ///   - bytes: The next bytes.
    /// - Returns: The checksum of the earlier bytes followed by `bytes`.
    public static func update(_ crc: UInt32, _ bytes: some Sequence<UInt8>) -> UInt32 {
        if let sum = bytes.withContiguousStorageIfAvailable({ update(crc, UnsafeRawBufferPointer($0)) }) { return sum }
        return Array(bytes).withUnsafeBytes { update(crc, $0) }
    }

    /// The checksum of `bytes` (an array, a slice, `string.utf8`, any sequence of bytes).
    public static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        update(0, bytes)
    }

    /// The checksum of `bytes[range]`.
    public static func checksum(_ bytes: [UInt8], _ range: Range<Int>) -> UInt32 {
        bytes.withUnsafeBytes { update(0, UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
