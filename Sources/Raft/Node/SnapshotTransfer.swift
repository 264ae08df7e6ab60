/// How a node streams snapshots: in chunks with a window, resumed from the last acknowledged
/// offset when chunks are lost, restarted when the receiver lost the transfer, and given up
/// (the core is told, and probes again later) after repeated failures.
struct SnapshotStreamOptions: Sendable {
    var chunkBytes: Int
    var chunksInFlight: Int
    var retryTicks: Int
    var maxRetries: Int
}

/// The leader side: one transfer per follower. A value type driven by the loop (`start`, `ack`,
/// `tick`); it returns the messages to send and the transfers that ended. Sending chunks never
/// blocks the loop, so the leader keeps applying and serving proposals meanwhile.
struct SnapshotSenders {
    struct Transfer {
        var id: UInt64
        var term: Term
        var snapshot: Snapshot
        var checksum: UInt32
        /// Bytes the receiver confirmed.
        var acked = 0
        /// Bytes sent (the window runs from `acked` to `sent`).
        var sent = 0
        var idleTicks = 0
        /// Stalls in a row (reset by progress).
        var stalls = 0
        /// Restarts from zero (never reset): a receiver that keeps refusing is given up on.
        var restarts = 0
    }

    enum Outcome: Equatable {
        case finished(NodeID)
        case failed(NodeID)
    }

    let me: NodeID
    let options: SnapshotStreamOptions
    var transfers: [NodeID: Transfer] = [:]
    var nextID: UInt64

    init(me: NodeID, options: SnapshotStreamOptions, seed: UInt64) {
        self.me = me
        self.options = options
        nextID = seed
    }

    mutating func newID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    /// Starts streaming `snapshot` to `peer` (replacing a transfer of an older one).
    mutating func start(_ snapshot: Snapshot, to peer: NodeID, term: Term) -> [Message] {
        if let t = transfers[peer], t.snapshot.metadata == snapshot.metadata, t.term == term { return [] }
        let checksum = snapshot.data.withUnsafeBytes { CRC32C.update(0, $0) }
        transfers[peer] = Transfer(id: newID(), term: term, snapshot: snapshot, checksum: checksum)
        return fill(peer)
    }

    /// Sends chunks until the window is full.
    mutating func fill(_ peer: NodeID) -> [Message] {
        guard var t = transfers[peer] else { return [] }
        var out: [Message] = []
        let total = t.snapshot.data.count
        let windowEnd = t.acked + options.chunkBytes * options.chunksInFlight
        // An empty snapshot still goes out as one (empty) chunk.
        while t.sent < min(total, windowEnd) || (total == 0 && t.sent == 0 && out.isEmpty) {
            let end = min(total, t.sent + options.chunkBytes)
            let chunk = SnapshotChunk(
                transfer: t.id, metadata: t.snapshot.metadata, offset: UInt64(t.sent), totalBytes: UInt64(total), checksum: t.checksum,
                data: Array(t.snapshot.data[t.sent..<end]))
            out.append(Message(from: me, to: peer, term: t.term, kind: .snapshotChunk(chunk)))
            t.sent = end
            if total == 0 { break }
        }
        transfers[peer] = t
        return out
    }

    /// Handles a receiver's answer.
    mutating func ack(_ a: SnapshotChunkAck, from peer: NodeID) -> (messages: [Message], outcome: Outcome?) {
        guard var t = transfers[peer], t.id == a.transfer else { return ([], nil) }
        let total = t.snapshot.data.count
        if a.rejected {
            return restart(peer)
        }
        if a.next >= UInt64(total) {
            transfers[peer] = nil
            return ([], .finished(peer))
        }
        let next = Int(a.next)
        if next > t.acked {
            // Progress.
            t.acked = min(next, t.sent)
            t.idleTicks = 0
            t.stalls = 0
        } else if next == 0 && t.acked > 0 {
            // The receiver lost the transfer (it restarted): start from the beginning.
            t.acked = 0
            t.sent = 0
            t.idleTicks = 0
        }
        // Anything else is an answer at `acked` again (a chunk after a lost one arrived; the
        // retry timer resends from `acked`) or a stale, reordered answer: nothing to do.
        transfers[peer] = t
        return (fill(peer), nil)
    }

    /// Starts a transfer over under a new id, or gives up after too many attempts.
    mutating func restart(_ peer: NodeID) -> (messages: [Message], outcome: Outcome?) {
        guard var t = transfers[peer] else { return ([], nil) }
        t.restarts += 1
        if t.restarts > options.maxRetries {
            transfers[peer] = nil
            return ([], .failed(peer))
        }
        t.id = newID()
        t.acked = 0
        t.sent = 0
        t.idleTicks = 0
        transfers[peer] = t
        return (fill(peer), nil)
    }

    /// Advances time: a transfer with no progress for `retryTicks` resends from the last
    /// acknowledged offset; after `maxRetries` such attempts it fails.
    mutating func tick() -> (messages: [Message], outcomes: [Outcome]) {
        var out: [Message] = []
        var outcomes: [Outcome] = []
        for peer in transfers.keys.sorted() {
            guard var t = transfers[peer] else { continue }
            t.idleTicks += 1
            guard t.idleTicks >= options.retryTicks else {
                transfers[peer] = t
                continue
            }
            t.stalls += 1
            if t.stalls > options.maxRetries {
                transfers[peer] = nil
                outcomes.append(.failed(peer))
                continue
            }
            t.idleTicks = 0
            t.sent = t.acked
            transfers[peer] = t
            out += fill(peer)
        }
        return (out, outcomes)
    }

    /// Drops every transfer (this node is no longer the leader).
    mutating func cancelAll() { transfers = [:] }
}

/// The follower side: reassembles one transfer at a time and answers every chunk with where it
/// stands. A chunk that does not continue the transfer is answered with the offset expected, so
/// the sender resumes; a chunk of an unknown transfer past offset zero (the receiver restarted)
/// is answered with zero, so the sender starts over.
struct SnapshotReceiver {
    struct Assembly {
        var from: NodeID
        var term: Term
        var transfer: UInt64
        var metadata: SnapshotMetadata
        var total: Int
        var checksum: UInt32
        var data: [UInt8] = []
    }

    let me: NodeID
    /// The largest snapshot accepted, in bytes.
    let maxBytes: UInt64
    var assembly: Assembly?
    /// The transfer completed last: its chunks, resent because the final answer was lost, are
    /// answered "complete" instead of starting it over.
    var completed: (from: NodeID, transfer: UInt64, total: UInt64)?

    enum Result {
        /// Answer the sender.
        case reply(Message)
        /// The snapshot is complete: step the message into the core, and answer the sender.
        case complete(Message, reply: Message)
        /// A malformed chunk: dropped.
        case invalid(String)
    }

    mutating func receive(_ c: SnapshotChunk, from: NodeID, term: Term) -> Result {
        func reply(_ next: Int, rejected: Bool = false) -> Message {
            Message(from: me, to: from, term: term, kind: .snapshotChunkAck(SnapshotChunkAck(transfer: c.transfer, next: UInt64(next), rejected: rejected)))
        }
        guard c.totalBytes <= maxBytes else {
            return .reply(reply(0, rejected: true))
        }
        guard c.offset <= c.totalBytes, UInt64(c.data.count) <= c.totalBytes - c.offset else {
            return .invalid("snapshot chunk at \(c.offset)+\(c.data.count) overruns the snapshot's \(c.totalBytes) bytes")
        }
        guard c.metadata.index.rawValue <= Message.maxTermOrIndex, c.metadata.term.rawValue <= Message.maxTermOrIndex else {
            return .invalid("snapshot chunk with index \(c.metadata.index) and term \(c.metadata.term) out of range")
        }
        if let done = completed, done.from == from, done.transfer == c.transfer {
            return .reply(reply(Int(done.total)))
        }
        if assembly?.from != from || assembly?.transfer != c.transfer {
            // A transfer of an older term never replaces a newer one.
            if let a = assembly, a.term > term { return .invalid("snapshot chunk of term \(term) while receiving one of term \(a.term)") }
            guard c.offset == 0 else { return .reply(reply(0)) }
            assembly = Assembly(from: from, term: term, transfer: c.transfer, metadata: c.metadata, total: Int(c.totalBytes), checksum: c.checksum)
        }
        guard var a = assembly else { return .reply(reply(0)) }
        guard a.metadata == c.metadata, a.total == Int(c.totalBytes), a.checksum == c.checksum else {
            assembly = nil
            return .reply(reply(0, rejected: true))
        }
        guard Int(c.offset) == a.data.count else {
            // A duplicate or a gap: say where we stand.
            return .reply(reply(a.data.count))
        }
        a.data.append(contentsOf: c.data)
        guard a.data.count == a.total else {
            assembly = a
            return .reply(reply(a.data.count))
        }
        assembly = nil
        let sum = a.data.withUnsafeBytes { CRC32C.update(0, $0) }
        guard sum == a.checksum else { return .reply(reply(0, rejected: true)) }
        completed = (from, c.transfer, c.totalBytes)
        let install = Message(from: from, to: me, term: term, kind: .installSnapshot(InstallSnapshot(snapshot: Snapshot(metadata: a.metadata, data: a.data))))
        return .complete(install, reply: reply(a.total))
    }
}
