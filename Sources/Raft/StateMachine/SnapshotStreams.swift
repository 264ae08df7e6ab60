/// Where a state machine writes a snapshot: a stream of bytes that goes straight to the snapshot
/// file (with ``FileLogStorage``) or to memory, so a large state never has to be serialized into
/// one array first.
///
/// An output is handed to ``StateMachine/saveSnapshot(_:to:)`` on the runtime's snapshot thread
/// and used from that thread only. The runtime also writes a snapshot received from the leader
/// into one (``WritableLogStorage/beginReceivedSnapshot(_:)``), chunk by chunk on its transfer
/// thread.
public final class SnapshotOutput {
    enum Target {
        case memory
        case file(SnapshotWriter)
    }

    /// The snapshot being written: its index is the last entry the state machine had applied
    /// when ``StateMachine/prepareSnapshot()`` was called.
    public let metadata: SnapshotMetadata
    let target: Target
    var buffer: [UInt8] = []
    /// Bytes written so far.
    public private(set) var count = 0
    var sealed = false
    static let flushBytes = 64 << 10

    init(metadata: SnapshotMetadata, target: Target) {
        self.metadata = metadata
        self.target = target
    }

    /// Creates an output that keeps the bytes in memory (``data``).
    public convenience init(inMemory metadata: SnapshotMetadata) { self.init(metadata: metadata, target: .memory) }

    /// Appends bytes.
    public func write(_ bytes: some Sequence<UInt8>) throws(RaftError) {
        guard !sealed else { throw RaftError(.storage, "snapshot \(metadata.index) was already finished") }
        let before = buffer.count
        buffer.append(contentsOf: bytes)
        count += buffer.count - before
        if case .file(let w) = target, buffer.count >= Self.flushBytes {
            try w.write(buffer)
            buffer.removeAll(keepingCapacity: true)
        }
    }

    /// Everything written, for an in-memory output.
    public var data: [UInt8] {
        if case .memory = target { return buffer }
        return []
    }

    /// Writes what is buffered and makes the data durable (a file is synced, not yet visible).
    func seal() throws(RaftError) {
        guard !sealed else { return }
        sealed = true
        if case .file(let w) = target {
            if !buffer.isEmpty { try w.write(buffer) }
            buffer = []
            try w.seal()
        }
    }

    /// Abandons the snapshot (a temporary file is removed).
    func abort() {
        sealed = true
        if case .file(let w) = target { w.abort() }
    }
}

/// Where a state machine reads a snapshot from: a stream of the bytes its
/// ``StateMachine/saveSnapshot(_:to:)`` wrote, in order, read from the snapshot file chunk by
/// chunk, so a large state need not fit in memory. At startup the file's checksum was verified
/// first; a snapshot received from the leader was verified chunk by chunk as it arrived, before
/// it was written and installed.
public final class SnapshotInput {
    enum Source {
        case memory
        case file(SnapshotReader)
    }

    let source: Source
    var buffer: [UInt8]
    var position = 0
    var exhausted: Bool

    /// Creates an input over bytes held in memory.
    public init(_ bytes: [UInt8]) {
        source = .memory
        buffer = bytes
        exhausted = true
    }

    init(reader: SnapshotReader) {
        source = .file(reader)
        buffer = []
        exhausted = false
    }

    /// Makes at least one unread byte available unless the data ended; `false` at the end.
    func fill() throws(RaftError) -> Bool {
        while position == buffer.count {
            guard !exhausted, case .file(let reader) = source else { return false }
            if let chunk = try reader.next() {
                buffer = chunk
                position = 0
            } else {
                exhausted = true
                reader.close()
            }
        }
        return true
    }

    /// Reads up to `maxCount` bytes; returns an empty array at the end.
    public func read(upTo maxCount: Int) throws(RaftError) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < maxCount, try fill() {
            let end = position + min(buffer.count - position, maxCount - out.count)
            out.append(contentsOf: buffer[position..<end])
            position = end
        }
        return out
    }

    /// Reads exactly `count` bytes, or throws ``RaftError/Code/corruption`` if the snapshot ends
    /// first.
    public func read(exactly count: Int) throws(RaftError) -> [UInt8] {
        let bytes = try read(upTo: max(0, count))
        guard bytes.count == count else {
            throw RaftError(.corruption, "snapshot data ended after \(bytes.count) of the \(count) bytes expected")
        }
        return bytes
    }

    /// Reads everything not read yet.
    public func readAll() throws(RaftError) -> [UInt8] {
        var out: [UInt8] = []
        while try fill() {
            out.append(contentsOf: buffer[position...])
            position = buffer.count
        }
        return out
    }

    /// Releases the file, if any.
    func close() {
        if case .file(let reader) = source, !exhausted {
            exhausted = true
            reader.close()
        }
    }
}
