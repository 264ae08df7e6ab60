import NIOCore
import NIOEmbedded
import NIOTestUtils
import Raft
import RaftTransportTCP
import Testing

@Suite struct WireFormatTests {
    @Test func samplesCoverEveryKind() {
        let covered = Set(WireSamples.messages.map { WireFormat.FrameKind($0.kind) })
        let all = Set(WireFormat.FrameKind.allCases.filter { $0 != .hello })
        #expect(covered == all)
    }

    @Test(arguments: WireSamples.frames)
    func everyFrameRoundTrips(_ frame: WireFrame) throws {
        var b = try WireSamples.encoded(frame)
        #expect(b.readableBytes == WireFormat.frameSize(of: frame))
        let decoded = try WireFormat.decodeFrame(from: &b)
        #expect(decoded == frame)
        #expect(b.readableBytes == 0)
    }

    /// Indexes above `Int.max` can arrive in any frame; comparing them must not trap (it did:
    /// `LogIndex` used `Strideable`'s `==`, which computes the distance as an `Int`).
    @Test func hugeIndexesCompareWithoutTrapping() {
        let huge = LogIndex(rawValue: .max)
        #expect(huge == LogIndex(rawValue: .max))
        #expect(huge != LogIndex(rawValue: 1))
        #expect(Set([huge, LogIndex(rawValue: .max - 1)]).count == 2)
    }

    /// A heartbeat and a hello, byte by byte, as WireFormatSpecification.md shows them.
    @Test func framesMatchTheDocumentation() throws {
        let m = Message(from: 1, to: 2, term: 3, kind: .heartbeat(Heartbeat(commit: 4, round: 5)))
        let b = try WireSamples.encoded(.message(m))
        // The bytes of the article's examples (their checksums computed by an independent CRC-32C).
        #expect(b.getBytes(at: 0, length: b.readableBytes)! == hexBytes("52 46 54 57 03 16 00 00 00 00 00 05 32 8d d9 5a 01 02 03 04 05"))
        let hello = try WireSamples.encoded(.hello(Hello(clusterID: "prod-kv", sender: 1, receiver: 2)))
        #expect(
            hello.getBytes(at: 0, length: hello.readableBytes)!
                == hexBytes("52 46 54 57 01 01 00 00 00 00 00 1a 5c 94 e6 65 03 00 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 02 07 70 72 6f 64 2d 6b 76"))
        let append = Message(
            from: 1, to: 2, term: 3,
            kind: .appendEntries(
                AppendEntries(
                    prevLogIndex: 41, prevLogTerm: 3,
                    entries: [LogEntry(term: 3, index: 42, data: Array(0..<16)), LogEntry(term: 3, index: 43, data: Array(16..<32))],
                    leaderCommit: 40)))
        let a = try WireSamples.encoded(.message(append))
        #expect(
            a.getBytes(at: 0, length: a.readableBytes)!
                == hexBytes(
                    "52 46 54 57 03 14 00 00 00 00 00 2b b4 46 d2 31 01 02 03 29 03 28 00 02 00 40 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"
                        + " 40 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f"))
        let answer = try WireSamples.encoded(.message(Message(from: 2, to: 1, term: 3, kind: .appendEntriesResponse(AppendEntriesResponse(index: 43)))))
        #expect(answer.getBytes(at: 0, length: answer.readableBytes)! == hexBytes("52 46 54 57 03 15 00 00 00 00 00 05 89 41 cc e2 02 01 03 00 2b"))
    }

    /// NIOTestUtils feeds the stream whole, byte by byte, in random splits, and checks the
    /// decoder leaves nothing behind.
    @Test func decoderVerifier() throws {
        var pairs: [(ByteBuffer, [WireFrame])] = []
        for f in WireSamples.frames { pairs.append((try WireSamples.encoded(f), [f])) }
        pairs.append((try WireSamples.encoded(WireSamples.frames), WireSamples.frames))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs, decoderFactory: { WireFrameDecoder() })
    }

    /// The same stream cut at seeded random points gives the same frames, in order.
    @Test func randomSplitsGiveTheSameFrames() throws {
        let stream = try WireSamples.encoded(WireSamples.frames)
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<50 {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
            var rest = stream
            while rest.readableBytes > 0 {
                let n = Int.random(in: 1...max(1, min(rest.readableBytes, 97)), using: &rng)
                try channel.writeInbound(rest.readSlice(length: n)!)
            }
            var out: [WireFrame] = []
            while let f = try channel.readInbound(as: WireFrame.self) { out.append(f) }
            #expect(out == WireSamples.frames)
            _ = try channel.finish()
        }
    }

    @Test func partialFrameIsNotConsumed() throws {
        let whole = try WireSamples.encoded(WireSamples.frames[5])
        for cut in 0..<whole.readableBytes {
            var part = whole.getSlice(at: 0, length: cut)!
            let frame = try WireFormat.decodeFrame(from: &part)
            #expect(frame == nil)
            #expect(part.readableBytes == cut)
        }
    }

    /// A 4 GiB length field is refused from the header alone: nothing waits for (or allocates)
    /// the payload.
    @Test func hugeLengthIsRefusedFromTheHeader() throws {
        var b = try WireSamples.encoded(WireSamples.frames[4])
        b.setInteger(UInt32.max, at: b.readerIndex + 8)
        var header = b.getSlice(at: 0, length: WireFormat.headerSize)!
        let e = #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &header) }
        #expect(e?.code == .invalidMessage)
        #expect(e?.message.contains("exceeds the frame limit") == true)
        // Through the NIO handler: the error comes with the 16 header bytes, not 4 GiB later.
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        #expect(throws: RaftError.self) { try channel.writeInbound(b.getSlice(at: 0, length: WireFormat.headerSize)!) }
        _ = try? channel.finish()
    }

    @Test func frameLimitIsEnforcedBothWays() throws {
        let big = Message(
            from: 1, to: 2, term: 1,
            kind: .appendEntries(AppendEntries(prevLogIndex: 0, prevLogTerm: 0, entries: [LogEntry(term: 1, index: 1, data: Array(repeating: 7, count: 5000))], leaderCommit: 0)))
        var out = ByteBuffer()
        let e = #expect(throws: RaftError.self) { try WireFormat.encode(.message(big), into: &out, maxFrameBytes: 4096) }
        #expect(e?.code == .invalidArgument)
        #expect(out.readableBytes == 0)
        var b = try WireSamples.encoded(.message(big))
        #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &b, maxFrameBytes: 4096) }
    }

    @Test func badFramesGiveTypedErrors() throws {
        let good = try WireSamples.encoded(WireSamples.frames[3])
        func decode(_ change: (inout ByteBuffer) -> Void) -> RaftError? {
            var b = good
            change(&b)
            do {
                _ = try WireFormat.decodeFrame(from: &b)
                return nil
            } catch { return error }
        }
        #expect(decode { $0.setInteger(UInt8(0x00), at: 0) }?.code == .invalidMessage)
        #expect(decode { $0.setInteger(UInt8(4), at: 4) }?.code == .unsupportedFormat)
        // Version 2, the one before the compact payloads.
        #expect(decode { $0.setInteger(UInt8(2), at: 4) }?.code == .unsupportedFormat)
        // Version 1 is only a hello's header version; a message frame saying it is refused.
        #expect(decode { $0.setInteger(UInt8(1), at: 4) }?.code == .unsupportedFormat)
        #expect(decode { $0.setInteger(UInt8(0x7F), at: 5) }?.code == .invalidMessage)
        #expect(decode { $0.setInteger(UInt16(1), at: 6) }?.code == .invalidMessage)
        #expect(decode { $0.setInteger(UInt8(0xAA), at: 20) }?.code == .corruption)
        // Unknown versions and kinds are refused as soon as their byte arrives.
        var early = good.getSlice(at: 0, length: 5)!
        early.setInteger(UInt8(9), at: 4)
        #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &early) }
    }

    /// Payloads that pass the checksum but do not decode (the checksum is fixed after the
    /// change), so the payload checks themselves are tested.
    @Test func malformedPayloadsWithValidChecksums() throws {
        let vote = try WireSamples.encoded(.message(WireSamples.messages[1]))  // a pre-vote response
        // Its last byte is the granted flag.
        var bad = Fuzz.withFixedChecksum(vote) { $0.setInteger(UInt8(2), at: $0.writerIndex - 1) }
        let b = #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &bad) }
        #expect(b?.message.contains("not 0 or 1") == true)
        // An append whose entry count (a one-byte varint after the message header and four
        // one-byte fields) becomes 2^40, far beyond what the payload holds: refused before
        // reserving for it.
        let append = try WireSamples.encoded(.message(WireSamples.messages[5]))
        let countAt = WireFormat.frameSize(of: Message(from: 6, to: NodeID(rawValue: .max - 5), term: Term(rawValue: 5 << 32), kind: .timeoutNow)) + 4
        #expect(append.getInteger(at: countAt, as: UInt8.self) == 4)
        var count = Fuzz.replacing(append, at: countAt, length: 1, with: [0x80, 0x80, 0x80, 0x80, 0x80, 0x20])
        let e = #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &count) }
        #expect(e?.message.contains("cannot fit") == true)
        // Trailing bytes after a complete payload.
        var longer = vote
        longer.writeInteger(UInt8(0))
        longer.setInteger(UInt32(longer.readableBytes - 16), at: 8)
        var trailing = Fuzz.withFixedChecksum(longer) { _ in }
        let t = #expect(throws: RaftError.self) { try WireFormat.decodeFrame(from: &trailing) }
        #expect(t?.message.contains("left over") == true)
    }
}

func hexBytes(_ text: String) -> [UInt8] { text.split(separator: " ").map { UInt8($0, radix: 16)! } }
