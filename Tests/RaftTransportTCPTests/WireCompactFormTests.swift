import NIOCore
import Raft
import RaftTransportTCP
import Testing

/// Format version 3's compact forms: every value has one encoding (a decoder refuses the
/// others, so what decodes re-encodes to the same bytes), and an entry costs one byte of
/// overhead when its data is under 32 bytes.
@Suite struct WireCompactFormTests {
    /// A version-3 frame of `kind` with `payload`, its length and checksum right.
    static func frame(_ kind: WireFormat.FrameKind, _ payload: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer(bytes: WireFormat.magic + [WireFormat.version, kind.rawValue, 0, 0])
        b.writeInteger(UInt32(payload.count))
        b.writeInteger(UInt32(0))
        b.writeBytes(payload)
        return Fuzz.withFixedChecksum(b) { _ in }
    }

    static func decode(_ kind: WireFormat.FrameKind, _ payload: [UInt8]) throws(RaftError) -> WireFrame? {
        var b = frame(kind, payload)
        return try WireFormat.decodeFrame(from: &b)
    }

    static func refusal(_ kind: WireFormat.FrameKind, _ payload: [UInt8]) -> RaftError? {
        do {
            _ = try decode(kind, payload)
            return nil
        } catch { return error }
    }

    @Test func handBuiltFramesDecode() throws {
        // Heartbeat 1 -> 2, term 3, commit 300 (two bytes: ac 02), round 0.
        #expect(try Self.decode(.heartbeat, [1, 2, 3, 0xAC, 0x02, 0]) == .message(Message(from: 1, to: 2, term: 3, kind: .heartbeat(Heartbeat(commit: 300)))))
        // An append 1 -> 2 in term 7 after index 9 (term 6), commit 9: a no-op of term 6, then a
        // one-byte command of term 7 (runs: term 6 x1, term 7 x1).
        let append = try Self.decode(.appendEntries, [1, 2, 7, 9, 6, 9, 0, 2, 2, 6, 1, 7, 1, 0x01, 0x04, 0xEE])
        let expected = AppendEntries(
            prevLogIndex: 9, prevLogTerm: 6, entries: [LogEntry(term: 6, index: 10, kind: .noop), LogEntry(term: 7, index: 11, data: [0xEE])],
            leaderCommit: 9)
        #expect(append == .message(Message(from: 1, to: 2, term: 7, kind: .appendEntries(expected))))
    }

    @Test func varintsHaveOneForm() {
        // `from` 1 written in two bytes.
        #expect(Self.refusal(.heartbeat, [0x81, 0x00, 2, 3, 4, 5])?.message.contains("shortest form") == true)
        // Zero in two bytes.
        #expect(Self.refusal(.heartbeatResponse, [1, 2, 3, 0x80, 0x00])?.message.contains("shortest form") == true)
        // Eleven bytes, and ten whose last carries more than the 64th bit.
        let eleven: [UInt8] = Array(repeating: 0xFF, count: 10) + [0x01]
        #expect(Self.refusal(.heartbeatResponse, [1, 2, 3] + eleven)?.message.contains("does not fit 64 bits") == true)
        let overflow: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x02]
        #expect(Self.refusal(.heartbeatResponse, [1, 2, 3] + overflow)?.message.contains("does not fit 64 bits") == true)
        // UInt64.max itself is ten bytes ending in 01, and decodes.
        let max: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x01]
        #expect((try? Self.decode(.heartbeatResponse, [1, 2, 3] + max)) == .message(Message(from: 1, to: 2, term: 3, kind: .heartbeatResponse(HeartbeatResponse(round: .max)))))
        // A varint cut by the end of the payload.
        #expect(Self.refusal(.heartbeatResponse, [1, 2, 3, 0x80])?.message.contains("ends inside") == true)
    }

    @Test func termRunsHaveOneForm() {
        // Header 1 -> 2 term 7, prev 9/6, commit 9, probe 0, two one-byte commands.
        let head: [UInt8] = [1, 2, 7, 9, 6, 9, 0, 2]
        let entries: [UInt8] = [0x04, 0xA1, 0x04, 0xA2]
        #expect((try? Self.decode(.appendEntries, head + [0] + entries)) != nil, "no runs: both of term 7")
        let cases: [(String, [UInt8], String)] = [
            ("one run of the message's term", [1, 7, 2], "single term run of the message's term"),
            ("two neighbouring runs of one term", [2, 5, 1, 5, 1], "neighbouring term runs"),
            ("runs covering one entry of two", [1, 5, 1], "cover 1 of 2"),
            ("a run of no entry", [2, 5, 0, 6, 2], "a term run of 0 entries"),
            ("a run longer than the entries", [1, 5, 3], "a term run of 3 entries"),
            ("more runs than entries", [3, 5, 1, 6, 1, 5, 1], "3 term runs for 2 entries"),
        ]
        for (what, runs, complaint) in cases {
            let error = Self.refusal(.appendEntries, head + runs + entries)
            #expect(error?.code == .invalidMessage, "\(what)")
            #expect(error?.message.contains(complaint) == true, "\(what): \(error?.message ?? "accepted")")
        }
    }

    @Test func entriesCannotRunPastTheLargestIndex() {
        let max: [UInt8] = Array(repeating: 0xFF, count: 9) + [0x01]
        // prevLogIndex UInt64.max, then one entry.
        let e = Self.refusal(.appendEntries, [1, 2, 7] + max + [6, 0, 0, 1, 0, 0x04])
        #expect(e?.message.contains("run past the largest index") == true)
        // An unknown entry kind (3) in the header's low bits.
        #expect(Self.refusal(.appendEntries, [1, 2, 7, 0, 0, 0, 0, 1, 0, 0x03])?.message.contains("unknown entry kind 3") == true)
    }

    @Test func appendAnswerFlagsAnnounceOnlyNonzeroFields() {
        #expect(Self.refusal(.appendEntriesResponse, [2, 1, 7, 0x02, 5, 0, 0])?.message.contains("hint announced but zero") == true)
        #expect(Self.refusal(.appendEntriesResponse, [2, 1, 7, 0x04, 5, 0])?.message.contains("probe number announced but zero") == true)
        #expect(Self.refusal(.appendEntriesResponse, [2, 1, 7, 0x08, 5])?.message.contains("unknown append answer flags 0x8") == true)
        // A hint of index 0 with a nonzero term is a value, not zero.
        #expect(
            (try? Self.decode(.appendEntriesResponse, [2, 1, 7, 0x03, 5, 0, 2]))
                == .message(Message(from: 2, to: 1, term: 7, kind: .appendEntriesResponse(AppendEntriesResponse(index: 5, reject: true, rejectHintTerm: 2)))))
    }

    /// The format carries no entry index: an append whose entries do not follow its previous
    /// index one by one cannot be encoded (the core never builds one), and nothing is written.
    @Test(arguments: [[LogIndex(rawValue: 11)], [10, 12], [10, 10]] as [[LogIndex]])
    func appendsWithGapsAreNotEncoded(_ indexes: [LogIndex]) {
        let entries = indexes.map { LogEntry(term: 1, index: $0, kind: .noop) }
        let m = Message(from: 1, to: 2, term: 1, kind: .appendEntries(AppendEntries(prevLogIndex: 9, prevLogTerm: 1, entries: entries, leaderCommit: 0)))
        var out = ByteBuffer()
        let e = #expect(throws: RaftError.self) { try WireFormat.encode(.message(m), into: &out) }
        #expect(e?.code == .invalidArgument)
        #expect(e?.message.contains("one by one") == true)
        #expect(out.readableBytes == 0)
    }

    /// What an entry costs on the wire: its data and one byte while the data is under 32 bytes
    /// and the entry is of the message's term; the append's own fields are paid once.
    @Test func anEntryCostsOneByteOfOverhead() {
        func append(_ n: Int, bytes: Int) -> Message {
            let entries = (0..<n).map { LogEntry(term: 5, index: LogIndex(rawValue: 1001 + UInt64($0)), data: Array(repeating: 1, count: bytes)) }
            return Message(from: 1, to: 2, term: 5, kind: .appendEntries(AppendEntries(prevLogIndex: 1000, prevLogTerm: 5, entries: entries, leaderCommit: 999)))
        }
        #expect(WireFormat.frameSize(of: append(2, bytes: 16)) - WireFormat.frameSize(of: append(1, bytes: 16)) == 17)
        #expect(WireFormat.frameSize(of: append(2, bytes: 31)) - WireFormat.frameSize(of: append(1, bytes: 31)) == 32)
        #expect(WireFormat.frameSize(of: append(2, bytes: 32)) - WireFormat.frameSize(of: append(1, bytes: 32)) == 34)
        // 73 sixteen-byte entries (a batch at 256 proposers) in one frame: 17.4 bytes each.
        #expect(WireFormat.frameSize(of: append(73, bytes: 16)) == 16 + 3 + 2 + 1 + 2 + 1 + 1 + 1 + 73 * 17)
        // A successful answer to it is 22 bytes.
        #expect(WireFormat.frameSize(of: Message(from: 2, to: 1, term: 5, kind: .appendEntriesResponse(AppendEntriesResponse(index: 1073)))) == 16 + 3 + 1 + 2)
    }

    @Test func earlierVersionsAreRefused() {
        var b = Self.frame(.heartbeat, [1, 2, 3, 4, 5])
        b.setInteger(UInt8(2), at: 4)
        var fixed = Fuzz.withFixedChecksum(b) { _ in }
        let e = #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &fixed) }
        #expect(e?.code == .unsupportedFormat)
        #expect(e?.message.contains("version 2 is not supported (this node speaks version 3)") == true)
    }
}
