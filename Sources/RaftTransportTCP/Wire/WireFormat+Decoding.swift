import NIOCore
import Raft

extension WireFormat {
    /// Takes one frame from the front of `buffer`, or nothing if the frame is not complete yet.
    ///
    /// A partial frame is never consumed: `buffer` is left as it was until every byte of the
    /// frame is there. The header is checked as far as it has arrived (magic, version, kind,
    /// reserved bytes, then the length against `maxFrameBytes`), so a bad or oversized frame is
    /// refused before its payload is waited for or allocated.
    ///
    /// - Throws: ``/Raft/RaftError/Code/unsupportedFormat`` for an unknown version,
    ///   ``/Raft/RaftError/Code/corruption`` for a checksum mismatch, and
    ///   ``/Raft/RaftError/Code/invalidMessage`` for anything else malformed (bad magic, an
    ///   unknown kind, reserved bytes set, a length over the limit, a payload that does not
    ///   decode or has bytes left over). After an error the connection's stream cannot be
    ///   trusted: close it.
    public static func decodeFrame(from buffer: inout ByteBuffer, maxFrameBytes: Int = defaultMaxFrameBytes) throws(RaftError) -> WireFrame? {
        let r = buffer.readerIndex
        let available = buffer.readableBytes
        for i in 0..<min(4, available) where buffer.getInteger(at: r + i, as: UInt8.self) != magic[i] {
            throw RaftError(.invalidMessage, "not a swift-raft frame: bad magic at byte \(i)")
        }
        // A hello's header always says version 1 (its layout never changes); every other frame's
        // says the version this library speaks.
        let headerVersion = available > 4 ? buffer.getInteger(at: r + 4, as: UInt8.self) : nil
        if let v = headerVersion, v != version && v != helloHeaderVersion {
            throw RaftError(.unsupportedFormat, "frame format version \(v) is not supported (this node speaks version \(version))")
        }
        var kind: FrameKind?
        if available > 5, let k = buffer.getInteger(at: r + 5, as: UInt8.self) {
            guard let known = FrameKind(rawValue: k) else {
                throw RaftError(.invalidMessage, "unknown frame kind 0x\(String(k, radix: 16))")
            }
            if let v = headerVersion, v != (known == .hello ? helloHeaderVersion : version) {
                throw RaftError(
                    .unsupportedFormat,
                    "a \(known) frame of format version \(v) is not supported (this node speaks version \(version))")
            }
            kind = known
        }
        if available >= 8, let reserved = buffer.getInteger(at: r + 6, as: UInt16.self), reserved != 0 {
            throw RaftError(.invalidMessage, "reserved header bytes are 0x\(String(reserved, radix: 16)), not zero")
        }
        guard available >= headerSize, let kind, let length32 = buffer.getInteger(at: r + 8, as: UInt32.self),
            let expected = buffer.getInteger(at: r + 12, as: UInt32.self)
        else { return nil }
        // Checked before anything waits for the payload: a 4 GiB length is refused right here.
        let length = Int(length32)
        guard length <= maxFrameBytes - headerSize else {
            throw RaftError(.invalidMessage, "a \(kind) frame of \(headerSize + length) bytes exceeds the frame limit of \(maxFrameBytes) bytes")
        }
        guard available >= headerSize + length else { return nil }
        let actual = buffer.withUnsafeReadableBytes { all -> UInt32 in
            let head = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: all[0..<12]))
            return CRC32C.update(head, UnsafeRawBufferPointer(rebasing: all[headerSize..<(headerSize + length)]))
        }
        guard actual == expected else {
            throw RaftError(.corruption, "a \(kind) frame's checksum is 0x\(String(actual, radix: 16)), the header says 0x\(String(expected, radix: 16))")
        }
        var payload = PayloadReader(buffer: buffer.getSlice(at: r + headerSize, length: length)!, kind: kind)
        let frame = try payload.frame()
        try payload.finish()
        buffer.moveReaderIndex(forwardBy: headerSize + length)
        return frame
    }
}
