#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import Raft
import RaftTransportTCP

/// libFuzzer's driver (`-sanitize=fuzzer` links it): parses libFuzzer's options from the
/// command line and runs the callback on every input it makes.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// The program's entry point hands over to libFuzzer's driver. (SwiftPM gives an executable's
/// `main` a name of its own on Linux, so libFuzzer's `main` would not be used.)
///
/// `fuzz-wire-decoder --write-seeds DIR` writes a seed corpus instead: every sample frame of the
/// codec tests (`WireSamples.swift`, shared with them), alone and all in one stream, each with
/// its checksums left as they are and fixed up (the first byte, see ``fuzzWireDecoder(_:_:)``).
@main enum FuzzMain {
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count == 3, arguments[1] == "--write-seeds" {
            exit(writeSeeds(to: arguments[2]) ? 0 : 1)
        }
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, fuzzWireDecoder))
    }
}

/// The frame limit the fuzzer decodes with: small, so that lengths over it are easy to find.
let limit = WireFormat.minimumMaxFrameBytes

/// libFuzzer's entry point: one input, decoded as a connection's byte stream.
///
/// The first byte chooses how (bit 0: recompute every frame's checksum first, so the payload
/// decoder, not the checksum, meets the mutations; bits 1...7: where to split the stream for the
/// second, piecewise decoding); the rest is the stream. It traps (which libFuzzer reports, with
/// the input) when:
/// - a frame decodes whose re-encoding is not exactly the bytes it came from;
/// - decoding the stream in two pieces gives other frames or another outcome than in one;
/// - an incomplete frame left waiting claims a length over the limit;
/// - a decode that returned nothing consumed bytes, or one that threw moved the reader.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireDecoder(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let mode = data[0]
    var bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if mode & 1 == 1 { fixChecksums(&bytes) }

    // All at once.
    var whole = ByteBuffer(bytes: bytes)
    let (frames, failed) = decodeAll(&whole)
    if !failed, whole.readableBytes >= WireFormat.headerSize, let length = whole.getInteger(at: whole.readerIndex + 8, as: UInt32.self) {
        precondition(Int(length) + WireFormat.headerSize <= limit, "an incomplete frame waits for \(length) bytes, over the limit")
    }

    // Re-encoding gives back the bytes.
    var encoded = ByteBuffer()
    for f in frames {
        do { try WireFormat.encode(f, into: &encoded, maxFrameBytes: limit) } catch { preconditionFailure("a decoded frame does not re-encode: \(error)") }
    }
    precondition(Array(encoded.readableBytesView) == Array(bytes[0..<encoded.readableBytes]), "a frame re-encodes to other bytes")

    // In two pieces, as two reads from a socket.
    let split = bytes.isEmpty ? 0 : Int(mode >> 1) % (bytes.count + 1)
    var stream = ByteBuffer(bytes: bytes[0..<split])
    var (piecewise, failedEarly) = decodeAll(&stream)
    if !failedEarly {
        stream.writeBytes(bytes[split...])
        let (rest, failedLate) = decodeAll(&stream)
        piecewise += rest
        failedEarly = failedLate
    }
    precondition(piecewise == frames && failedEarly == failed, "decoding in two pieces differs from decoding at once")
    return 0
}

/// Decodes frames from the front of `buffer` until one is incomplete or malformed.
func decodeAll(_ buffer: inout ByteBuffer) -> (frames: [WireFrame], failed: Bool) {
    var frames: [WireFrame] = []
    while true {
        let before = buffer.readerIndex
        do {
            guard let f = try WireFormat.decodeFrame(from: &buffer, maxFrameBytes: limit) else {
                precondition(buffer.readerIndex == before, "an incomplete frame was consumed")
                return (frames, false)
            }
            frames.append(f)
        } catch {
            precondition(buffer.readerIndex == before, "a malformed frame was consumed")
            return (frames, true)
        }
    }
}

/// Rewrites the checksum of every frame whose header and payload are within `bytes`.
func fixChecksums(_ bytes: inout [UInt8]) {
    var at = 0
    while at + WireFormat.headerSize <= bytes.count {
        let length = bytes[(at + 8)..<(at + 12)].reduce(0) { $0 << 8 | Int($1) }
        let end = at + WireFormat.headerSize + length
        guard end <= bytes.count else { return }
        let crc = CRC32C.update(CRC32C.checksum(bytes[at..<(at + 12)]), bytes[(at + WireFormat.headerSize)..<end])
        for k in 0..<4 { bytes[at + 12 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
        at = end
    }
}

/// Writes the seed corpus into the directory `path` (which must exist); `false` if a file
/// cannot be written.
func writeSeeds(to path: String) -> Bool {
    var streams: [[UInt8]] = []
    do {
        for frame in WireSamples.frames { streams.append(Array(try WireSamples.encoded(frame).readableBytesView)) }
        streams.append(Array(try WireSamples.encoded(WireSamples.frames).readableBytesView))
    } catch {
        print("a sample frame does not encode: \(error)")
        return false
    }
    for (i, stream) in streams.enumerated() {
        for mode: UInt8 in [0, 1] {
            let name = "\(path)/seed-\(i)-\(mode)"
            guard let file = fopen(name, "wb") else {
                print("cannot write \(name)")
                return false
            }
            let bytes = [mode &+ UInt8(truncatingIfNeeded: i) << 1] + stream
            let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
            guard written == bytes.count else { return false }
        }
    }
    print("wrote \(streams.count * 2) seeds to \(path)")
    return true
}
