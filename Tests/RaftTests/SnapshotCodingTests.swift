@testable import Raft
import RaftTestKit
import Testing

/// The typed helpers of `SnapshotOutput`/`SnapshotInput` (SnapshotStreams+Coding.swift) and the
/// public CRC-32C.
@Suite("Snapshot stream coding")
struct SnapshotCodingTests {
    static let metadata = SnapshotMetadata(index: 7, term: 2, confState: ConfState(voters: [1, 2, 3]))

    /// A value of every kind the helpers encode, with its writer and a check that reads it back.
    struct Value: CustomStringConvertible {
        let description: String
        let write: (SnapshotOutput) throws -> Void
        let readBack: (SnapshotInput) throws -> Bool
    }

    static func integer<T: FixedWidthInteger>(_ v: T, _ named: ((SnapshotInput) throws -> T)? = nil) -> Value {
        Value(
            description: "\(T.self)(\(v))",
            write: { try $0.write(v) },
            readBack: { input in
                let r = try named?(input) ?? input.read(T.self)
                return r == v
            })
    }

    static func bytes(_ b: [UInt8], max: Int) -> Value {
        Value(
            description: "\(b.count) bytes", write: { try $0.write(lengthPrefixed: b) },
            readBack: { try $0.readLengthPrefixedBytes(maxLength: max) == b })
    }

    static func string(_ s: String, max: Int) -> Value {
        Value(
            description: "string \(s.utf8.count) bytes", write: { try $0.write(lengthPrefixed: s) },
            readBack: { try $0.readLengthPrefixedString(maxLength: max) == s })
    }

    /// Every helper, the edges of every width, and values long enough to span many chunks.
    static var values: [Value] {
        [
        integer(UInt8(0)), integer(UInt8.max, { try $0.readUInt8() }),
        integer(UInt16(0xBEEF), { try $0.readUInt16() }), integer(UInt16.max),
        integer(UInt32(0xDEAD_BEEF), { try $0.readUInt32() }), integer(UInt32.max),
        integer(UInt64(0x0123_4567_89AB_CDEF), { try $0.readUInt64() }), integer(UInt64.max),
        integer(Int8.min), integer(Int8(-1)), integer(Int16.min), integer(Int16(-2)),
        integer(Int32.min, { try $0.readInt32() }), integer(Int32(-123_456), { try $0.readInt32() }), integer(Int32.max),
        integer(Int64.min, { try $0.readInt64() }), integer(Int64(-1), { try $0.readInt64() }), integer(Int64.max),
        integer(Int(-42)), integer(UInt(42)),
        bytes([], max: 0), bytes([9], max: 1), bytes((0..<300).map { UInt8(truncatingIfNeeded: $0) }, max: 300),
        string("", max: 0), string("key-1", max: 64), string("naïve ☃ 𝄞", max: 64),
        integer(UInt64(1)),
        ]
    }

    static func encode(_ values: [Value]) throws -> [UInt8] {
        let out = SnapshotOutput(inMemory: metadata)
        for v in values { try v.write(out) }
        return out.data
    }

    /// An input that receives `data` in chunks of `chunk` bytes: a real snapshot file, written one
    /// chunk per `SnapshotWriter.write`, read back as the node reads it at startup.
    static func fileInput(_ data: [UInt8], chunk: Int) throws -> SnapshotInput {
        let fs = SimulatedFileSystem()
        let snapshotter = try Snapshotter(directory: "/snap", fileSystem: fs)
        let meta = SnapshotFileMetadata(raft: metadata, appliedIndex: metadata.index)
        let w = try snapshotter.create(meta)
        var k = 0
        while k < data.count {
            try w.write(Array(data[k..<min(data.count, k + chunk)]))
            k += chunk
        }
        try w.commit()
        return SnapshotInput(reader: try snapshotter.open(Snapshotter.fileName(metadata)))
    }

    @Test func encodingIsLittleEndianWithUInt32LengthPrefixes() throws {
        let out = SnapshotOutput(inMemory: Self.metadata)
        try out.write(UInt32(0x0102_0304))
        try out.write(Int16(-2))
        try out.write(lengthPrefixed: [0xAA, 0xBB])
        try out.write(lengthPrefixed: "hé")
        #expect(out.data == [0x04, 0x03, 0x02, 0x01, 0xFE, 0xFF, 2, 0, 0, 0, 0xAA, 0xBB, 3, 0, 0, 0, 0x68, 0xC3, 0xA9])
        #expect(out.count == out.data.count)
    }

    /// Every helper reads back what it wrote, from memory and from files whose chunks split the
    /// values at every possible place.
    @Test(arguments: [1, 2, 3, 5, 7, 8, 13, 64, 1 << 20])
    func roundTripAcrossChunkBoundaries(chunk: Int) throws {
        let data = try Self.encode(Self.values)
        for input in [try Self.fileInput(data, chunk: chunk), SnapshotInput(data)] {
            for v in Self.values {
                #expect(try v.readBack(input), "\(v) after chunks of \(chunk)")
            }
            #expect(try input.read(upTo: 1).isEmpty, "nothing left over")
        }
    }

    /// Through a file-backed output (the path `FileLogStorage.beginSnapshot` uses), past its
    /// 64 KiB flushes, and back.
    @Test func roundTripThroughFileOutput() throws {
        let dir = TempDirectory()
        let storage = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        try storage.append((1...10).map { entry($0, term: 1) })
        try storage.sync()
        let out = try storage.beginSnapshot(at: 8, confState: nil)
        let blob = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        for i in 0..<20_000 { try out.write(UInt64(i) &* 0x9E37_79B9_7F4A_7C15) }
        try out.write(lengthPrefixed: blob)
        for i in 0..<5_000 { try out.write(lengthPrefixed: "key-\(i)") }
        try storage.finishSnapshot(out)

        let input = try storage.openSnapshot()
        for i in 0..<20_000 { #expect(try input.readUInt64() == UInt64(i) &* 0x9E37_79B9_7F4A_7C15) }
        #expect(try input.readLengthPrefixedBytes(maxLength: blob.count) == blob)
        for i in 0..<5_000 { #expect(try input.readLengthPrefixedString(maxLength: 16) == "key-\(i)") }
        #expect(try input.read(upTo: 1).isEmpty)
        storage.close()
    }

    /// A snapshot cut anywhere inside a value is a `.corruption` error on the read that needs the
    /// missing bytes, never a crash or a made-up value.
    @Test func truncatedInputIsCorruption() throws {
        let data = try Self.encode(Self.values)
        // Where each value ends.
        var ends: [Int] = []
        do {
            let out = SnapshotOutput(inMemory: Self.metadata)
            for v in Self.values {
                try v.write(out)
                ends.append(out.count)
            }
        }
        for cut in 0..<data.count {
            for input in [SnapshotInput(Array(data[..<cut])), try Self.fileInput(Array(data[..<cut]), chunk: 3)] {
                var failed: RaftError?
                var readOK = 0
                for v in Self.values {
                    do {
                        #expect(try v.readBack(input), "cut at \(cut): \(v) read back wrong")
                        readOK += 1
                    } catch let error as RaftError {
                        failed = error
                        break
                    }
                }
                #expect(failed?.code == .corruption, "cut at \(cut)")
                // The values that end at or before the cut read back; the next one fails.
                #expect(readOK == ends.firstIndex { $0 > cut }, "cut at \(cut)")
            }
        }
    }

    /// A length prefix above the caller's maximum is refused before anything is allocated or
    /// read, even when it claims 4 GiB.
    @Test func oversizeLengthPrefixIsRefused() throws {
        let hostile: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x41, count: 16)
        for input in [SnapshotInput(hostile), try Self.fileInput(hostile, chunk: 2)] {
            let error = #expect(throws: RaftError.self) { try input.readLengthPrefixedBytes(maxLength: 1 << 20) }
            #expect(error?.code == .corruption)
            #expect(error?.message.contains("length prefix 4294967295 exceeds the maximum") == true)
        }
        let out = SnapshotOutput(inMemory: Self.metadata)
        try out.write(lengthPrefixed: "seventeen bytes!!")
        let long = SnapshotInput(out.data)
        let error = #expect(throws: RaftError.self) { try long.readLengthPrefixedString(maxLength: 16) }
        #expect(error?.code == .corruption)
        // Exactly at the maximum is fine.
        #expect(try SnapshotInput(out.data).readLengthPrefixedString(maxLength: 17) == "seventeen bytes!!")
        // A negative maximum accepts only the empty value.
        #expect(throws: RaftError.self) { try SnapshotInput(out.data).readLengthPrefixedBytes(maxLength: -1) }
        #expect(try SnapshotInput([0, 0, 0, 0]).readLengthPrefixedBytes(maxLength: -1) == [])
    }

    @Test func invalidUTF8IsCorruption() throws {
        let input = SnapshotInput([2, 0, 0, 0, 0xC3, 0x28])
        let error = #expect(throws: RaftError.self) { try input.readLengthPrefixedString(maxLength: 8) }
        #expect(error?.code == .corruption)
    }

    @Test func writesAfterFinishingAreRefused() throws {
        let dir = TempDirectory()
        let storage = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        try storage.append((1...3).map { entry($0, term: 1) })
        try storage.sync()
        let out = try storage.beginSnapshot(at: 2, confState: nil)
        try out.write(UInt64(1))
        try storage.finishSnapshot(out)
        #expect(throws: RaftError.self) { try out.write(UInt64(2)) }
        #expect(throws: RaftError.self) { try out.write(lengthPrefixed: "late") }
        storage.close()
    }
}

@Suite("CRC-32C")
struct CRC32CTests {
    /// Published check values: the CRC catalogue's check value, and RFC 3720 appendix B.4.
    @Test(arguments: [
        ([UInt8](), UInt32(0)),
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
    ] as [([UInt8], UInt32)])
    func knownVectors(bytes: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
        #expect(CRC32C.checksum(bytes[...]) == expected, "a slice")
        #expect(CRC32C.checksum(bytes.lazy.map { $0 }) == expected, "a sequence without contiguous storage")
        #expect(bytes.withUnsafeBytes { CRC32C.update(0, $0) } == expected, "raw bytes")
    }

    @Test func stringUTF8() {
        #expect(CRC32C.checksum("123456789".utf8) == 0xE306_9283)
    }

    /// Extending piece by piece, split anywhere, equals the checksum of the whole.
    @Test func incrementalEqualsWhole() {
        let data = (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let whole = CRC32C.checksum(data)
        for split in 0...data.count {
            let crc = CRC32C.update(CRC32C.update(0, data[..<split]), data[split...])
            #expect(crc == whole, "split at \(split)")
        }
        #expect(CRC32C.checksum(data, 10..<60) == CRC32C.checksum(data[10..<60]))
    }
}
