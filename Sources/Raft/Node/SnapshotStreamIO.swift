import Dispatch

/// Completions of snapshot work a node does off its run loop, posted to the loop's inbox.
enum SnapshotWork: Sendable {
    /// A piece of a snapshot being sent, read on the transfer thread (or the read's failure).
    case chunkRead(peer: NodeID, transfer: UInt64, Result<SnapshotPiece, RaftError>)
    /// A piece of a snapshot being received, written on the transfer thread.
    case chunkStored(ChunkStored)
    /// The state machine finished restoring a snapshot on the snapshot thread (or failed).
    case restored(SnapshotMetadata, RaftError?)
}

extension SnapshotData {
    /// Whether this names a file a node runtime received (``SnapshotData/received(id:)``).
    var namesReceivedFile: Bool {
        if case .received = self { return true }
        return false
    }
}

/// How the write of one received piece ended.
struct ChunkStored: Sendable {
    enum Outcome: Sendable {
        /// Written, and the running checksum matched.
        case stored
        /// The running checksum did not match (or the piece did not continue the file): nothing
        /// was written.
        case damaged
        /// The storage failed.
        case failed(RaftError)
    }

    var from: NodeID
    var transfer: UInt64
    var end: Int
    var last: Bool
    var outcome: Outcome
}

/// One transfer's view of the snapshot being sent: reads it chunk by chunk from a stream the
/// storage opened (``LogStorage/openSnapshot(verification:)`` with
/// ``SnapshotVerification/whileReading``), keeping the running checksum the chunks carry. Used
/// on the node's transfer thread only, one read at a time; at most one chunk (plus the stream's
/// own buffer, one frame of the snapshot file) is in memory.
final class SnapshotChunkReader {
    let input: SnapshotInput
    let chunkBytes: Int
    var offset = 0
    var checksum: UInt32 = 0

    init(input: SnapshotInput, chunkBytes: Int) {
        self.input = input
        self.chunkBytes = chunkBytes
    }

    /// The next piece. It is the last only once the stream reported its end, which a
    /// verifying stream does only after the stored checksum matched.
    func next() throws(RaftError) -> SnapshotPiece {
        let data = try input.read(upTo: chunkBytes)
        checksum = data.withUnsafeBytes { CRC32C.update(checksum, $0) }
        let piece = SnapshotPiece(offset: offset, data: data, checksum: checksum, last: try !input.fill())
        offset += data.count
        return piece
    }

    func close() { input.close() }
}

/// Writes a snapshot received from the leader into the output the storage began
/// (``WritableLogStorage/beginReceivedSnapshot(_:)``), checking each piece's running checksum
/// before writing it: the checksum is computed once, as the bytes arrive. The last piece seals
/// the output (written and synced, not yet visible). Used on the node's transfer thread only.
final class ReceivedSnapshotWriter {
    let output: SnapshotOutput
    var checksum: UInt32 = 0
    var written = 0

    init(output: SnapshotOutput) { self.output = output }

    /// Writes `piece`; `false` if it is damaged (nothing is written then).
    func write(_ piece: SnapshotPiece) throws(RaftError) -> Bool {
        guard piece.offset == written else { return false }
        let sum = piece.data.withUnsafeBytes { CRC32C.update(checksum, $0) }
        guard sum == piece.checksum else { return false }
        try output.write(piece.data)
        checksum = sum
        written = piece.end
        if piece.last { try output.seal() }
        return true
    }
}

/// The loop's side of the snapshot work it hands to other threads: which stream each transfer
/// reads, which file the receiver writes, what was received and is waiting for the core, and
/// which restores are under way. Confined to the run loop, like everything in ``NodeLoop``.
struct SnapshotIO {
    /// Chunk reads (sending) and writes (receiving) run here, off the loop, in order.
    let transferQueue = DispatchQueue(label: "swift-raft.node.snapshot-transfer")
    /// The stream each transfer reads, by follower.
    var streams: [NodeID: (transfer: UInt64, reader: Confined<SnapshotChunkReader>)] = [:]
    /// The file the receiver's assembly is written into.
    var receiving: (from: NodeID, transfer: UInt64, writer: Confined<ReceivedSnapshotWriter>)?
    /// Received snapshots stepped into the core, by the id their ``SnapshotData/received(id:)``
    /// carries, until a ``Ready`` installs them; the rest are dropped once the batch is done.
    var received: [UInt64: Confined<SnapshotOutput>] = [:]
    var lastReceivedID: UInt64 = 0
    /// Snapshots the state machine is restoring on the snapshot thread, oldest first. While
    /// any is, committed entries are held, not applied.
    var restoring: [SnapshotMetadata] = []
    /// The highest committed index handed out while restoring; applied from the log once the
    /// restore is done.
    var heldThrough: LogIndex = .zero
}
