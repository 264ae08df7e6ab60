import NIOCore
import NIOEmbedded
import Raft
import RaftTransportTCP
import Testing

enum Fuzz {
    /// `frame` changed by `change`, with its checksum recomputed, so the payload parser (not
    /// the checksum) is what the change meets.
    static func withFixedChecksum(_ frame: ByteBuffer, _ change: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var b = frame
        change(&b)
        let bytes = b.getBytes(at: b.readerIndex, length: b.readableBytes)!
        guard bytes.count >= WireFormat.headerSize else { return b }
        let crc = CRC32C.update(CRC32C.checksum(bytes[0..<12]), bytes[WireFormat.headerSize...])
        b.setInteger(crc, at: b.readerIndex + 12)
        return b
    }

    /// `frame` with `length` bytes at `offset` replaced by `bytes`, its payload length and
    /// checksum fixed to match.
    static func replacing(_ frame: ByteBuffer, at offset: Int, length: Int, with bytes: [UInt8]) -> ByteBuffer {
        var all = frame.getBytes(at: frame.readerIndex, length: frame.readableBytes)!
        all.replaceSubrange(offset..<(offset + length), with: bytes)
        var b = ByteBuffer(bytes: all)
        b.setInteger(UInt32(all.count - WireFormat.headerSize), at: 8)
        return withFixedChecksum(b) { _ in }
    }

    /// Decodes `buffer` to its end the way a connection would: frames until one is incomplete
    /// or an error (which ends the connection). Returns how it ended. Bounded: each step
    /// consumes a frame or stops.
    static func drain(_ buffer: inout ByteBuffer, maxFrameBytes: Int) -> (frames: Int, error: RaftError?) {
        var frames = 0
        while true {
            do {
                guard try WireFormat.decodeFrame(from: &buffer, maxFrameBytes: maxFrameBytes) != nil else { return (frames, nil) }
                frames += 1
            } catch { return (frames, error) }
        }
    }
}

@Suite struct WireFuzzTests {
    /// 100,000 seeded inputs: random bytes, random bytes behind a valid header prefix, and valid
    /// frames mutated (bytes flipped, cut, inserted, lengths replaced), half of them with the
    /// checksum fixed up so the payload decoder sees them. None may crash or hang, none may be
    /// decoded from a frame whose length exceeds the limit, and every decoded frame must
    /// re-encode to the bytes it came from.
    @Test func hundredThousandRandomAndMutatedFrames() throws {
        var rng = SeededGenerator(seed: 0x5EED)
        let seeds = try WireSamples.frames.map { try WireSamples.encoded($0) }
        let limit = 64 << 10
        var decoded = 0
        var refused = 0
        var incomplete = 0
        for i in 0..<100_000 {
            var input: ByteBuffer
            switch i % 4 {
            case 0:
                input = ByteBuffer(bytes: (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            case 1:
                input = ByteBuffer(bytes: WireFormat.magic + [WireFormat.version])
                input.writeBytes((0..<Int.random(in: 0...80, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            default:
                let seed = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
                let mutated = mutate(seed, &rng)
                input = i % 4 == 2 ? mutated : Fuzz.withFixedChecksum(mutated) { _ in }
            }
            let original = input
            let (frames, error) = Fuzz.drain(&input, maxFrameBytes: limit)
            decoded += frames
            if error != nil { refused += 1 } else if input.readableBytes > 0 { incomplete += 1 }
            // What decoded re-encodes to exactly the bytes it was read from.
            if frames > 0 {
                var again = original
                var reencoded = ByteBuffer()
                for _ in 0..<frames {
                    guard let f = try WireFormat.decodeFrame(from: &again, maxFrameBytes: limit) else {
                        Issue.record("a frame decoded once did not decode again")
                        break
                    }
                    try WireFormat.encode(f, into: &reencoded)
                }
                let consumed = original.readableBytes - again.readableBytes
                #expect(reencoded.readableBytes == consumed)
                #expect(reencoded.getBytes(at: 0, length: consumed) == original.getBytes(at: original.readerIndex, length: consumed))
            }
            // An incomplete frame left waiting never claims more than the limit.
            if error == nil, input.readableBytes >= WireFormat.headerSize, let length = input.getInteger(at: input.readerIndex + 8, as: UInt32.self) {
                #expect(Int(length) + WireFormat.headerSize <= limit)
            }
        }
        // The mix reaches every outcome, so the test exercises what it claims.
        #expect(decoded > 1000)
        #expect(refused > 10_000)
        #expect(incomplete > 100)
    }

    func mutate(_ frame: ByteBuffer, _ rng: inout SeededGenerator) -> ByteBuffer {
        var bytes = frame.getBytes(at: frame.readerIndex, length: frame.readableBytes)!
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch Int.random(in: 0..<6, using: &rng) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            case 1 where !bytes.isEmpty:
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
            case 2:
                bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            case 3 where bytes.count >= 12:
                // A length field of any size, 4 GiB included.
                let length = [UInt32.max, UInt32(1 << 31), UInt32.random(in: 0...UInt32.max, using: &rng), UInt32.random(in: 0...200, using: &rng)]
                    .randomElement(using: &rng)!
                for k in 0..<4 { bytes[8 + k] = UInt8(truncatingIfNeeded: length >> (24 - 8 * UInt32(k))) }
            case 4 where bytes.count >= 16 + 3 + 4:
                // A count or length inside the payload (after a message header of three bytes or more).
                let at = Int.random(in: (16 + 3)..<(bytes.count - 3), using: &rng)
                for k in 0..<4 { bytes[at + k] = UInt8.random(in: 0...255, using: &rng) }
            default:
                bytes += (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            }
        }
        return ByteBuffer(bytes: bytes)
    }

    /// A bad frame on one channel fails that channel only: another channel's decoder, fed a good
    /// stream at the same time, delivers all of it.
    @Test func badFrameFailsOnlyItsOwnChannel() throws {
        let good = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        let bad = EmbeddedChannel(handler: ByteToMessageHandler(WireFrameDecoder()))
        var garbage = try WireSamples.encoded(WireSamples.frames[6])
        garbage.setInteger(UInt8(0xEE), at: 20)
        #expect(throws: RaftError.self) { try bad.writeInbound(garbage) }
        try good.writeInbound(try WireSamples.encoded(WireSamples.frames))
        var out: [WireFrame] = []
        while let f = try good.readInbound(as: WireFrame.self) { out.append(f) }
        #expect(out == WireSamples.frames)
        _ = try good.finish()
        _ = try? bad.finish()
    }
}
