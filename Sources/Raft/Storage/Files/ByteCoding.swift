/// Little-endian encoding helpers for the on-disk formats.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for k in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt16(k)))) } }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(k)))) } }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) } }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
}

/// Reads little-endian values; every read is bounds-checked and fails softly (returns nil).
struct ByteReader {
    let bytes: [UInt8]
    var pos: Int

    init(_ bytes: [UInt8], at pos: Int = 0) {
        self.bytes = bytes
        self.pos = pos
    }

    var remaining: Int { bytes.count - pos }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { pos += 2 }
        return UInt16(bytes[pos]) | UInt16(bytes[pos + 1]) << 8
    }

    mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[pos + k]) << (8 * UInt32(k)) }
        pos += 4
        return v
    }

    mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(bytes[pos + k]) << (8 * UInt64(k)) }
        pos += 8
        return v
    }

    mutating func raw(_ n: Int) -> [UInt8]? {
        guard n >= 0, remaining >= n else { return nil }
        defer { pos += n }
        return Array(bytes[pos..<(pos + n)])
    }
}

/// Hexadecimal file-name components, fixed width so names sort by value.
func hex16(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 16 - s.count)) + s
}

func joinPath(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }

/// Whether every byte is `0-9` or `a-f`.
func isLowerHex<S: Sequence>(_ bytes: S) -> Bool where S.Element == UInt8 {
    bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
}
