// Typed helpers over the snapshot streams, so a state machine writes and reads its snapshot as
// values instead of hand-encoding bytes.
//
// The encoding (stable: a snapshot written by one release is read by the next):
// - a fixed-width integer: its `bitWidth / 8` bytes, least significant first (little-endian),
//   two's complement for signed types;
// - length-prefixed bytes: the count as a `UInt32` (4 bytes, little-endian), then the bytes;
// - a length-prefixed string: its UTF-8 bytes, length-prefixed.
//
// Only the public reads and writes of the streams are used here, so the helpers do not depend on
// how the node moves snapshot bytes around.

extension SnapshotOutput {
    /// Writes an integer as its `bitWidth / 8` bytes, little-endian (two's complement for signed
    /// types). Read it back with ``SnapshotInput/read(_:)`` and the same type, or one of the
    /// named readers such as ``SnapshotInput/readUInt64()``.
    ///
    /// `Int` and `UInt` are written at this platform's width (8 bytes on 64-bit systems); write
    /// `Int64(value)` when a snapshot may be read on a platform of another width.
    ///
    /// ```swift
    /// try output.write(UInt64(count))
    /// try output.write(Int32(-5))
    /// ```
    ///
    /// - Throws: ``RaftError`` from the stream (``RaftError/Code/storage`` once the snapshot was
    ///   finished; ``RaftError/Code/io`` when the file cannot be written).
    public func write<T: FixedWidthInteger>(_ value: T) throws(RaftError) {
        try write((0..<(T.bitWidth / 8)).lazy.map { k in UInt8(truncatingIfNeeded: value >> (8 * k)) })
    }

    /// Writes `bytes` after their count (a little-endian `UInt32`). Read them back with
    /// ``SnapshotInput/readLengthPrefixedBytes(maxLength:)``.
    ///
    /// - Throws: ``RaftError/Code/storage`` when there are more than `UInt32.max` bytes (nothing
    ///   is written then), or an error of the stream.
    public func write(lengthPrefixed bytes: some Collection<UInt8>) throws(RaftError) {
        guard let count = UInt32(exactly: bytes.count) else {
            throw RaftError(.storage, "snapshot \(metadata.index): \(bytes.count) bytes do not fit a length prefix (at most \(UInt32.max))")
        }
        try write(count)
        try write(bytes)
    }

    /// Writes a string as its UTF-8 bytes after their count (a little-endian `UInt32`). Read it
    /// back with ``SnapshotInput/readLengthPrefixedString(maxLength:)``.
    ///
    /// - Throws: ``RaftError/Code/storage`` when its UTF-8 form is longer than `UInt32.max` bytes
    ///   (nothing is written then), or an error of the stream.
    public func write(lengthPrefixed string: String) throws(RaftError) {
        try write(lengthPrefixed: string.utf8)
    }
}

extension SnapshotInput {
    /// Reads an integer written by `SnapshotOutput.write(_:)` with a value of the same type:
    /// `bitWidth / 8` bytes, little-endian.
    ///
    /// ```swift
    /// let count = try input.read(UInt64.self)
    /// let delta = try input.read(Int32.self)
    /// ```
    ///
    /// - Throws: ``RaftError/Code/corruption`` when the snapshot ends first, or an error of the
    ///   stream. After an error the position in the stream is unspecified: stop reading.
    public func read<T: FixedWidthInteger>(_ type: T.Type) throws(RaftError) -> T {
        let bytes = try read(exactly: T.bitWidth / 8)
        var value = T.zero
        for (k, byte) in bytes.enumerated() { value |= T(truncatingIfNeeded: byte) << (8 * k) }
        return value
    }

    /// Reads a `UInt8` (one byte). See ``read(_:)``.
    public func readUInt8() throws(RaftError) -> UInt8 { try read(UInt8.self) }
    /// Reads a little-endian `UInt16`. See ``read(_:)``.
    public func readUInt16() throws(RaftError) -> UInt16 { try read(UInt16.self) }
    /// Reads a little-endian `UInt32`. See ``read(_:)``.
    public func readUInt32() throws(RaftError) -> UInt32 { try read(UInt32.self) }
    /// Reads a little-endian `UInt64`. See ``read(_:)``.
    public func readUInt64() throws(RaftError) -> UInt64 { try read(UInt64.self) }
    /// Reads a little-endian `Int32`. See ``read(_:)``.
    public func readInt32() throws(RaftError) -> Int32 { try read(Int32.self) }
    /// Reads a little-endian `Int64`. See ``read(_:)``.
    public func readInt64() throws(RaftError) -> Int64 { try read(Int64.self) }

    /// Reads bytes written by `SnapshotOutput.write(lengthPrefixed:)`.
    ///
    /// The count is checked against `maxLength` before anything else is read, so a damaged or
    /// hostile snapshot cannot make this allocate more than `maxLength` bytes: pass the longest
    /// value your state machine ever writes there (a key size limit, say).
    ///
    /// - Parameter maxLength: The largest count accepted.
    /// - Throws: ``RaftError/Code/corruption`` when the count exceeds `maxLength` or the snapshot
    ///   ends before the bytes do, or an error of the stream. After an error the position in the
    ///   stream is unspecified: stop reading.
    public func readLengthPrefixedBytes(maxLength: Int) throws(RaftError) -> [UInt8] {
        let count = try read(UInt32.self)
        guard UInt64(count) <= UInt64(max(0, maxLength)) else {
            throw RaftError(.corruption, "snapshot data: length prefix \(count) exceeds the maximum of \(maxLength) bytes")
        }
        return try read(exactly: Int(count))
    }

    /// Reads a string written by `SnapshotOutput.write(lengthPrefixed:)`.
    ///
    /// - Parameter maxLength: The largest accepted length of the string's UTF-8 form, in bytes;
    ///   checked before the bytes are read, as in ``readLengthPrefixedBytes(maxLength:)``.
    /// - Throws: ``RaftError/Code/corruption`` when the length exceeds `maxLength`, the snapshot
    ///   ends first, or the bytes are not valid UTF-8; or an error of the stream.
    public func readLengthPrefixedString(maxLength: Int) throws(RaftError) -> String {
        let bytes = try readLengthPrefixedBytes(maxLength: maxLength)
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw RaftError(.corruption, "snapshot data: a length-prefixed string of \(bytes.count) bytes is not valid UTF-8")
        }
        return string
    }
}
