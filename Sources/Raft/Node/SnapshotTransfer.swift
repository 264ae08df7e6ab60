/// How a node streams snapshots: in chunks with a window, resumed from the last acknowledged
/// offset when chunks are lost, restarted when the receiver lost the transfer, and given up
/// (the core is told, and probes again later) after repeated failures.
struct SnapshotStreamOptions: Sendable {
    var chunkBytes: Int
    var chunksInFlight: Int
    var retryTicks: Int
    var maxRetries: Int
}

/// A piece of a snapshot read from the sender's stream: where it starts, its bytes, the running
/// CRC-32C of the snapshot through its last byte, and whether it ends the snapshot (a reader
/// says so only once the stream passed its own checksum).
struct SnapshotPiece: Sendable, Hashable {
    var offset: Int
    var data: [UInt8]
    var checksum: UInt32
    var last: Bool

    var end: Int { offset + data.count }
}

/// The leader side: one transfer per follower. A value type driven by the loop (`start`, `read`,
/// `ack`, `tick`); it performs no I/O. It returns ``Effects``: the chunks to send, the pieces
/// to read next from a transfer's stream (the loop reads them on its transfer thread and hands
/// them back with ``read(_:peer:transfer:)``), and the transfers that ended.
///
/// Invariant: a transfer holds only the pieces between the receiver's acknowledgement and the
/// end of its window, at most `chunkBytes * chunksInFlight` bytes: the snapshot itself is never
/// in memory. Resending after a loss comes from those pieces; starting over reopens the stream.
struct SnapshotSenders {
    struct Transfer {
        var id: UInt64
        var term: Term
        var metadata: SnapshotMetadata
        /// Pieces read and not yet acknowledged, in order; the first one ends past `acked`.
        var window: [SnapshotPiece] = []
        /// How many of `window` were sent since the last (re)send from `acked`.
        var sentPieces = 0
        /// Bytes the receiver confirmed.
        var acked = 0
        /// The end of the last piece read: where the next read starts.
        var readEnd = 0
        /// The stream was opened (its first read was asked for).
        var opened = false
        /// A read is outstanding.
        var reading = false
        /// The last piece was read: the snapshot is `readEnd` bytes.
        var ended = false
        var idleTicks = 0
        /// Stalls in a row (reset by progress).
        var stalls = 0
        /// Restarts from zero after a refusal (never reset): a receiver that keeps refusing is
        /// given up on.
        var restarts = 0
        /// The receiver said it holds all these bytes and is making them durable
        /// (``SnapshotChunkAck/sealing``): the transfer waits for its final answer, which
        /// acknowledges this many bytes, probing with one piece per retry.
        var receiverSealing: Int?

        /// The end of the last piece sent.
        var sentEnd: Int { sentPieces > 0 ? window[sentPieces - 1].end : acked }
    }

    /// A piece the loop must read from `peer`'s transfer stream.
    struct Read: Hashable {
        var peer: NodeID
        var transfer: UInt64
        /// The transfer's first read: the loop opens its stream first.
        var opensStream: Bool
    }

    /// What the loop must do after a call.
    struct Effects {
        var messages: [Message] = []
        var reads: [Read] = []
        var outcomes: [Outcome] = []

        var isEmpty: Bool { messages.isEmpty && reads.isEmpty && outcomes.isEmpty }

        mutating func merge(_ other: Effects) {
            messages += other.messages
            reads += other.reads
            outcomes += other.outcomes
        }
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

    /// The bytes a transfer may hold past its acknowledgement.
    var windowBytes: Int { options.chunkBytes * options.chunksInFlight }

    /// Bytes of snapshot data held in memory by all transfers.
    var bufferedBytes: Int { transfers.values.reduce(0) { $0 + $1.window.reduce(0) { $0 + $1.data.count } } }

    /// Starts streaming the snapshot `metadata` names to `peer` (replacing a transfer of an
    /// older one, or of an older term).
    mutating func start(_ metadata: SnapshotMetadata, to peer: NodeID, term: Term) -> Effects {
        if let t = transfers[peer], t.metadata == metadata, t.term == term { return Effects() }
        transfers[peer] = Transfer(id: newID(), term: term, metadata: metadata)
        return fill(peer)
    }

    /// A piece read for `transfer`; a stale one (of a transfer since replaced) is dropped.
    mutating func read(_ piece: SnapshotPiece, peer: NodeID, transfer: UInt64) -> Effects {
        guard var t = transfers[peer], t.id == transfer, t.reading, piece.offset == t.readEnd else { return Effects() }
        t.reading = false
        t.window.append(piece)
        t.readEnd = piece.end
        t.ended = piece.last
        transfers[peer] = t
        return fill(peer)
    }

    /// `transfer` cannot go on (its stream is not the storage's latest snapshot any more): it
    /// fails, so the core sends the current one.
    mutating func abandon(_ peer: NodeID, transfer: UInt64) -> Effects {
        guard transfers[peer]?.id == transfer else { return Effects() }
        transfers[peer] = nil
        return Effects(outcomes: [.failed(peer)])
    }

    /// Sends the pieces read that fit the window, and asks for the next one if there is room.
    mutating func fill(_ peer: NodeID) -> Effects {
        guard var t = transfers[peer] else { return Effects() }
        var e = Effects()
        let windowEnd = t.acked + windowBytes
        // While the receiver seals, one piece is enough to ask whether it is done.
        let sendable = t.receiverSealing == nil ? t.window.count : min(t.window.count, 1)
        while t.sentPieces < sendable, t.window[t.sentPieces].offset < windowEnd {
            let p = t.window[t.sentPieces]
            let chunk = SnapshotChunk(
                transfer: t.id, metadata: t.metadata, offset: UInt64(p.offset), data: p.data, checksum: p.checksum, last: p.last)
            e.messages.append(Message(from: me, to: peer, term: t.term, kind: .snapshotChunk(chunk)))
            t.sentPieces += 1
        }
        if t.receiverSealing == nil && !t.reading && !t.ended && t.readEnd < windowEnd {
            e.reads.append(Read(peer: peer, transfer: t.id, opensStream: !t.opened))
            t.opened = true
            t.reading = true
        }
        transfers[peer] = t
        return e
    }

    /// Handles a receiver's answer.
    mutating func ack(_ a: SnapshotChunkAck, from peer: NodeID) -> Effects {
        guard var t = transfers[peer], t.id == a.transfer else { return Effects() }
        if a.rejected {
            return restart(peer, counting: true)
        }
        let next = Int(clamping: a.next)
        if a.sealing {
            // The receiver has everything and is writing and syncing it: the answer is alive,
            // so not a stall, however long a large snapshot takes to be made durable.
            t.receiverSealing = next
            t.idleTicks = 0
            t.stalls = 0
            transfers[peer] = t
            return Effects()
        }
        if (t.ended && a.next == UInt64(t.readEnd)) || t.receiverSealing == next {
            // Complete (for a transfer the receiver answered while sealing an earlier one of
            // the same snapshot, with the size it gave then).
            transfers[peer] = nil
            return Effects(outcomes: [.finished(peer)])
        }
        // Any other answer is not "sealing" (any more): stream as usual.
        t.receiverSealing = nil
        if next > t.acked {
            // Progress: forget what the receiver holds.
            t.acked = min(next, t.sentEnd)
            var dropped = 0
            while dropped < t.window.count && t.window[dropped].end <= t.acked { dropped += 1 }
            t.window.removeFirst(dropped)
            t.sentPieces = max(0, t.sentPieces - dropped)
            t.idleTicks = 0
            t.stalls = 0
        } else if next == 0 && t.acked > 0 {
            // The receiver lost the transfer (it restarted): start from the beginning.
            return restart(peer, counting: false)
        }
        // Anything else is an answer at `acked` again (a chunk after a lost one arrived; the
        // retry timer resends from `acked`) or a stale, reordered answer: nothing to do.
        transfers[peer] = t
        return fill(peer)
    }

    /// Starts a transfer over under a new id, from a new stream; after too many refusals
    /// (`counting`), gives up.
    mutating func restart(_ peer: NodeID, counting: Bool) -> Effects {
        guard let t = transfers[peer] else { return Effects() }
        var fresh = Transfer(id: newID(), term: t.term, metadata: t.metadata)
        fresh.restarts = t.restarts + (counting ? 1 : 0)
        if fresh.restarts > options.maxRetries {
            transfers[peer] = nil
            return Effects(outcomes: [.failed(peer)])
        }
        transfers[peer] = fresh
        return fill(peer)
    }

    /// Advances time: a transfer with no progress for `retryTicks` resends from the last
    /// acknowledged offset; after `maxRetries` such attempts it fails.
    mutating func tick() -> Effects {
        var e = Effects()
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
                e.outcomes.append(.failed(peer))
                continue
            }
            t.idleTicks = 0
            t.sentPieces = 0
            transfers[peer] = t
            e.merge(fill(peer))
        }
        return e
    }

    /// Drops every transfer (this node is no longer the leader).
    mutating func cancelAll() { transfers = [:] }
}

/// The follower side: one transfer at a time, answered with where it stands. A value type
/// driven by the loop; it performs no I/O. A chunk that continues the transfer is handed out to
/// be written (``Write``; the loop writes it into a file on its transfer thread, where its
/// checksum is verified, and reports back with ``stored(transfer:from:end:last:damaged:)``,
/// which answers the sender). A chunk that does not continue it is answered with the offset
/// expected, so the sender resumes; a chunk of an unknown transfer past offset zero (the
/// receiver restarted) is answered with zero, so the sender starts over.
struct SnapshotReceiver {
    struct Assembly {
        var from: NodeID
        var term: Term
        var transfer: UInt64
        var metadata: SnapshotMetadata
        /// Bytes accepted in order (handed out to be written).
        var received = 0
        /// Bytes written (the transfer thread reported them stored): what is acknowledged.
        /// Invariant: `written <= received`.
        var written = 0
        /// The chunk that ends the snapshot was accepted: the assembly completes when it is
        /// written.
        var lastAccepted = false
        /// Later transfers of the same snapshot from the same sender, which arrived while the
        /// last piece was being written (the sender gave up waiting): answered when it is.
        var aliases: [(transfer: UInt64, term: Term)] = []
    }

    /// A chunk to write into the assembly's file.
    struct Write {
        var from: NodeID
        var transfer: UInt64
        var metadata: SnapshotMetadata
        /// The first chunk of a new assembly: begin its file first (dropping any older one).
        var begins: Bool
        var piece: SnapshotPiece
    }

    let me: NodeID
    /// The largest snapshot accepted, in bytes.
    let maxBytes: UInt64
    var assembly: Assembly?
    /// The transfer completed last (with the transfers answered by it, ``Assembly/aliases``):
    /// their chunks, resent because the final answer was lost, are answered "complete"
    /// instead of starting it over.
    var completed: (from: NodeID, transfers: [UInt64], total: UInt64)?

    enum Result {
        /// Answer the sender.
        case reply(Message)
        /// Write the chunk; its write answers the sender.
        case write(Write)
        /// A malformed chunk: dropped.
        case invalid(String)
    }

    enum Stored {
        /// Answer the sender.
        case reply(Message)
        /// The snapshot is complete, written and verified: step an install into the core, then
        /// answer the sender (for each transfer that sent it).
        case complete(from: NodeID, term: Term, metadata: SnapshotMetadata, replies: [Message])
        /// The write belongs to a transfer replaced meanwhile.
        case stale
    }

    func ack(_ transfer: UInt64, to: NodeID, term: Term, next: Int, rejected: Bool = false, sealing: Bool = false) -> Message {
        let a = SnapshotChunkAck(transfer: transfer, next: UInt64(next), rejected: rejected, sealing: sealing)
        return Message(from: me, to: to, term: term, kind: .snapshotChunkAck(a))
    }

    mutating func receive(_ c: SnapshotChunk, from: NodeID, term: Term) -> Result {
        func reply(_ next: Int, rejected: Bool = false, sealing: Bool = false) -> Message {
            ack(c.transfer, to: from, term: term, next: next, rejected: rejected, sealing: sealing)
        }
        guard c.metadata.index.rawValue <= Message.maxTermOrIndex, c.metadata.term.rawValue <= Message.maxTermOrIndex else {
            return .invalid("snapshot chunk with index \(c.metadata.index) and term \(c.metadata.term) out of range")
        }
        guard c.offset <= maxBytes, UInt64(c.data.count) <= maxBytes - c.offset else {
            // Larger than this node accepts: refused before it is written.
            if assembly?.from == from && assembly?.transfer == c.transfer { assembly = nil }
            return .reply(reply(0, rejected: true))
        }
        if let done = completed, done.from == from, done.transfers.contains(c.transfer) {
            return .reply(reply(Int(done.total)))
        }
        if var a = assembly, a.lastAccepted, a.from == from, a.transfer != c.transfer, a.metadata == c.metadata, term >= a.term {
            // The sender gave up waiting for the last piece to be made durable and sends the
            // same snapshot again: the file being sealed holds it whole, so it is kept (not
            // started over, which a large snapshot would never survive), and this transfer is
            // answered with it.
            if !a.aliases.contains(where: { $0.transfer == c.transfer }) {
                a.aliases.append((c.transfer, term))
                assembly = a
            }
            return .reply(reply(a.received, sealing: true))
        }
        var begins = false
        if assembly?.from != from || assembly?.transfer != c.transfer {
            // A transfer of an older term never replaces a newer one.
            if let a = assembly, a.term > term { return .invalid("snapshot chunk of term \(term) while receiving one of term \(a.term)") }
            guard c.offset == 0 else { return .reply(reply(0)) }
            assembly = Assembly(from: from, term: term, transfer: c.transfer, metadata: c.metadata)
            begins = true
        }
        guard var a = assembly else { return .reply(reply(0)) }
        guard a.metadata == c.metadata else {
            assembly = nil
            return .reply(reply(0, rejected: true))
        }
        if a.lastAccepted {
            // Every byte is here and the last piece is being written and synced: the sender
            // waits for that without counting it as a stall.
            return .reply(reply(a.received, sealing: true))
        }
        guard Int(c.offset) == a.received else {
            // A duplicate or a gap: say where we stand. Only what is written counts: bytes
            // accepted but still queued to be written are not acknowledged, so a slow disk
            // holds the sender's window instead of letting it queue ever more.
            return .reply(reply(a.written))
        }
        a.received += c.data.count
        a.lastAccepted = c.last
        assembly = a
        let piece = SnapshotPiece(offset: Int(c.offset), data: c.data, checksum: c.checksum, last: c.last)
        return .write(Write(from: from, transfer: c.transfer, metadata: a.metadata, begins: begins, piece: piece))
    }

    /// The piece of `transfer` ending at `end` was written (its running checksum matched), or
    /// was found `damaged` (it did not): answers the sender, completing the snapshot with its
    /// last piece.
    mutating func stored(transfer: UInt64, from: NodeID, end: Int, last: Bool, damaged: Bool) -> Stored {
        guard var a = assembly, a.from == from, a.transfer == transfer else { return .stale }
        if damaged {
            assembly = nil
            return .reply(ack(transfer, to: from, term: a.term, next: 0, rejected: true))
        }
        let reply = ack(transfer, to: from, term: a.term, next: end)
        guard last else {
            a.written = end
            assembly = a
            return .reply(reply)
        }
        assembly = nil
        completed = (from, [transfer] + a.aliases.map(\.transfer), UInt64(end))
        let replies = [reply] + a.aliases.map { ack($0.transfer, to: from, term: $0.term, next: end) }
        return .complete(from: from, term: a.term, metadata: a.metadata, replies: replies)
    }
}
