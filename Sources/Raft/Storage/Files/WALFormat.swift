/// The write-ahead log's on-disk format (version 2; version 1 segments are read too). See the
/// "Storage formats" article.
///
/// A segment file `<seq>.wal` (16 hexadecimal digits) starts with a 24-byte header:
/// magic `SWRFTWAL`, format version (u16), reserved (u16), segment sequence number (u64),
/// CRC-32C of those 20 bytes (u32). Records follow, each framed as
/// `length (u32) | CRC-32C of the body (u32) | body`, where the body is a type byte and a payload.
/// All integers are little endian.
enum WALFormat {
    static let magic: [UInt8] = Array("SWRFTWAL".utf8)
    /// The version written. Version 2 added membership entries (entry kind 2) and the
    /// `membershipBase` record; a version 1 segment holds neither and is read as it is.
    static let version: UInt16 = 2
    /// The versions read.
    static let readableVersions: ClosedRange<UInt16> = 1...2
    static let headerSize = 24
    static let frameSize = 8
    /// Upper bound on one record body: a larger length field is damage, not data.
    static let maxBody = 1 << 30

    enum RecordType: UInt8 {
        /// term u64, index u64, kind u8, data.
        case entry = 1
        /// term u64, vote u64, commit u64.
        case hardState = 2
        /// index u64, term u64, reset u8, voter count u32, voters u64...: entries up to `index`
        /// are gone (compaction); with `reset` every entry is gone (a snapshot was installed).
        /// Written by version 1 only; read in every version.
        case base = 3
        /// index u64, term u64, reset u8, then the membership at `index` in
        /// ``ConfState/encoded()``'s form (to the end of the body). Version 2's `base`.
        case membershipBase = 4
    }

    static func segmentName(_ seq: UInt64) -> String { hex16(seq) + ".wal" }

    static func parseSegmentName(_ name: String) -> UInt64? {
        guard name.hasSuffix(".wal"), name.utf8.count == 20, isLowerHex(name.utf8.prefix(16)) else { return nil }
        return UInt64(name.prefix(16), radix: 16)
    }

    static func header(seq: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.raw(magic)
        w.u16(version)
        w.u16(0)
        w.u64(seq)
        w.u32(CRC32C.checksum(w.bytes))
        return w.bytes
    }

    /// Appends one framed record whose body is written by `body` (after the type byte).
    static func appendRecord(_ out: inout [UInt8], type: RecordType, body: (inout [UInt8]) -> Void) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0])
        out.append(type.rawValue)
        body(&out)
        let length = out.count - start - frameSize
        let crc = CRC32C.checksum(out, (start + frameSize)..<out.count)
        for k in 0..<4 {
            out[start + k] = UInt8(truncatingIfNeeded: UInt32(length) >> (8 * UInt32(k)))
            out[start + 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k)))
        }
    }

    static func putU64(_ out: inout [UInt8], _ v: UInt64) {
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
    }

    static func encodeEntry(_ out: inout [UInt8], _ e: LogEntry) {
        appendRecord(&out, type: .entry) { b in
            putU64(&b, e.term.rawValue)
            putU64(&b, e.index.rawValue)
            b.append(e.kind.rawValue)
            b.append(contentsOf: e.data)
        }
    }

    static func encodeHardState(_ out: inout [UInt8], _ hs: HardState) {
        appendRecord(&out, type: .hardState) { b in
            putU64(&b, hs.term.rawValue)
            putU64(&b, hs.vote.rawValue)
            putU64(&b, hs.commit.rawValue)
        }
    }

    static func encodeBase(_ out: inout [UInt8], index: LogIndex, term: Term, reset: Bool, conf: ConfState) {
        appendRecord(&out, type: .membershipBase) { b in
            putU64(&b, index.rawValue)
            putU64(&b, term.rawValue)
            b.append(reset ? 1 : 0)
            b.append(contentsOf: conf.encoded())
        }
    }

    /// A decoded record body.
    enum Record {
        case entry(LogEntry)
        case hardState(HardState)
        case base(index: LogIndex, term: Term, reset: Bool, conf: ConfState)
    }

    /// Decodes a record body (type byte and payload); `nil` if malformed.
    static func decode(_ body: ArraySlice<UInt8>) -> Record? {
        var r = ByteReader(Array(body))
        guard let t = r.u8(), let type = RecordType(rawValue: t) else { return nil }
        switch type {
        case .entry:
            guard let term = r.u64(), let index = r.u64(), let k = r.u8(), let kind = LogEntry.Kind(rawValue: k),
                let data = r.raw(r.remaining)
            else { return nil }
            return .entry(LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: index), kind: kind, data: data))
        case .hardState:
            guard let term = r.u64(), let vote = r.u64(), let commit = r.u64(), r.remaining == 0 else { return nil }
            return .hardState(HardState(term: Term(rawValue: term), vote: NodeID(rawValue: vote), commit: LogIndex(rawValue: commit)))
        case .base:
            guard let index = r.u64(), let term = r.u64(), let reset = r.u8(), let n = r.u32(), r.remaining == Int(n) * 8 else {
                return nil
            }
            var voters: [NodeID] = []
            for _ in 0..<n { voters.append(NodeID(rawValue: r.u64()!)) }
            return .base(index: LogIndex(rawValue: index), term: Term(rawValue: term), reset: reset != 0, conf: ConfState(voters: voters))
        case .membershipBase:
            guard let index = r.u64(), let term = r.u64(), let reset = r.u8(), let rest = r.raw(r.remaining),
                let conf = try? ConfState(decoding: rest[...])
            else { return nil }
            return .base(index: LogIndex(rawValue: index), term: Term(rawValue: term), reset: reset != 0, conf: conf)
        }
    }
}
