import Testing

@testable import Raft

/// The follower's side of a snapshot transfer against a slow disk: what it acknowledges while
/// writes are queued, and how it answers while the last piece is being made durable.
@Suite("Snapshot receiver")
struct SnapshotReceiverTests {
    static let meta = SnapshotMetadata(index: 40, term: 3, confState: ConfState(voters: [1, 2, 3]))

    func chunk(_ transfer: UInt64, _ offset: UInt64, _ data: [UInt8], last: Bool = false) -> SnapshotChunk {
        SnapshotChunk(transfer: transfer, metadata: Self.meta, offset: offset, data: data, checksum: 0, last: last)
    }

    func ackOf(_ m: Message) -> SnapshotChunkAck? {
        if case .snapshotChunkAck(let a) = m.kind { return a }
        return nil
    }

    func next(_ r: SnapshotReceiver.Result) -> UInt64? {
        if case .reply(let m) = r { return ackOf(m)?.next }
        return nil
    }

    /// A duplicate is answered with the bytes written, not the bytes accepted and still queued
    /// to be written. Before the fix it was answered 20 with nothing written.
    @Test func acknowledgesOnlyWrittenBytes() {
        var r = SnapshotReceiver(me: 2, maxBytes: 1 << 20)
        let ten = [UInt8](repeating: 1, count: 10)
        guard case .write = r.receive(chunk(7, 0, ten), from: 1, term: 3) else { Issue.record("chunk 0 not written"); return }
        guard case .write = r.receive(chunk(7, 10, ten), from: 1, term: 3) else { Issue.record("chunk 1 not written"); return }
        // Nothing stored yet; the leader resends chunk 0 on its retry tick.
        #expect(next(r.receive(chunk(7, 0, ten), from: 1, term: 3)) == 0, "nothing is written yet")
        guard case .reply(let m) = r.stored(transfer: 7, from: 1, end: 10, last: false, damaged: false) else {
            Issue.record("the write was not answered")
            return
        }
        #expect(ackOf(m)?.next == 10)
        #expect(next(r.receive(chunk(7, 0, ten), from: 1, term: 3)) == 10, "10 bytes written")
        // A gap is answered the same way.
        #expect(next(r.receive(chunk(7, 40, ten), from: 1, term: 3)) == 10)
    }

    /// With a disk that does not finish writing, the sender's resends never slide its window:
    /// the writes queued stay within one window. Before the fix every resend was answered with
    /// the bytes accepted, the window slid, and the queue of writes grew with every retry.
    @Test func slowDiskHoldsTheSendersWindow() {
        var p = TransferPipe(data: (0..<200).map { UInt8($0) }, chunk: 10, window: 2, retryTicks: 1, maxRetries: 100)
        var held: [SnapshotReceiver.Write] = []
        func drain() {
            while !p.queue.isEmpty {
                let w = p.queue.removeFirst()
                if case .write(let wr) = w { held.append(wr) } else { p.step(w) }
            }
        }
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        drain()
        for _ in 0..<20 {
            p.take(p.s.tick())
            drain()
        }
        #expect(held.count == 2, "queued \(held.count) writes of a 2-chunk window")
        #expect(p.s.transfers[2]?.acked == 0, "acknowledged \(p.s.transfers[2]?.acked ?? -1) bytes, none written")
        // The disk catches up: the transfer completes.
        p.queue = held.map(TransferPipe.Work.write)
        p.run()
        for _ in 0..<5 where p.outcomes.isEmpty {
            p.take(p.s.tick())
            p.run()
        }
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.first?.1 == p.data)
    }

    /// Runs `p` with the write of the last piece held back (its write and sync take long),
    /// the other writes done at once; returns the held write.
    func runHoldingTheSeal(_ p: inout TransferPipe) -> SnapshotReceiver.Write? {
        var held: SnapshotReceiver.Write?
        while !p.queue.isEmpty {
            let w = p.queue.removeFirst()
            if case .write(let wr) = w, wr.piece.last { held = wr } else { p.step(w) }
        }
        return held
    }

    /// The last piece of a large snapshot takes far longer to write and sync than the sender's
    /// retries last: the receiver answers "all here, being made durable", the sender keeps
    /// waiting, probing with one chunk per retry, and the transfer completes once the seal
    /// does. Before the fix the receiver did not answer, the transfer failed after
    /// retryTicks × maxRetries = 30 ticks, and the next one replaced the complete file.
    @Test func slowFinalSealDoesNotFailTheTransfer() {
        var p = TransferPipe(data: (0..<100).map { UInt8($0) }, chunk: 10, window: 4, retryTicks: 5, maxRetries: 5)
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        var held = runHoldingTheSeal(&p)
        #expect(held != nil, "the last piece is being sealed")
        let chunks = p.chunks
        for _ in 1...200 {
            p.take(p.s.tick())
            if let h = runHoldingTheSeal(&p) { held = h }
        }
        #expect(p.outcomes.isEmpty, "the transfer failed while the receiver sealed: \(p.outcomes)")
        #expect(p.chunks - chunks <= 200 / 5, "one probe per retry, not the window: \(p.chunks - chunks)")
        #expect(p.r.assembly?.lastAccepted == true)
        // The seal returns: complete, installed once.
        guard let w = held else { return }
        p.queue.append(.write(w))
        p.run()
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.count == 1 && p.installs.first?.1 == p.data)
        #expect(p.s.transfers.isEmpty)
    }

    /// A sender that gives up anyway (the answers were lost) and sends the same snapshot again
    /// under a new transfer does not make the receiver drop the file it is sealing: the new
    /// transfer is answered "being made durable" and, when the seal returns, complete. Before
    /// the fix its first chunk began a new file, the loop aborted the complete one and the seal's
    /// completion was stale, forever for a snapshot that takes longer to seal than the retries.
    @Test func newTransferOfTheSameSnapshotKeepsTheSealingFile() {
        var p = TransferPipe(data: (0..<100).map { UInt8($0) }, chunk: 10, window: 4, retryTicks: 5, maxRetries: 5)
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        guard let held = runHoldingTheSeal(&p) else {
            Issue.record("the last piece was not written")
            return
        }
        // Every answer lost: the sender gives up after its retries.
        p.lose = { m in if case .snapshotChunkAck = m.kind { true } else { false } }
        for _ in 1...40 where p.outcomes.isEmpty {
            p.take(p.s.tick())
            _ = runHoldingTheSeal(&p)
        }
        #expect(p.outcomes == [.failed(2)])
        // The core sends the same snapshot again: a new transfer.
        p.outcomes = []
        p.lose = { _ in false }
        let first = held.transfer
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        #expect(runHoldingTheSeal(&p) == nil, "nothing to write: the file being sealed holds it")
        let second = p.s.transfers[2]?.id
        #expect(second != nil && second != first)
        #expect(p.r.assembly?.transfer == first && p.r.assembly?.lastAccepted == true, "the sealing assembly was replaced")
        #expect(p.s.transfers[2]?.receiverSealing == 100)
        for _ in 1...50 {
            p.take(p.s.tick())
            _ = runHoldingTheSeal(&p)
        }
        #expect(p.outcomes.isEmpty)
        // The seal returns: both transfers are answered; the new one finishes.
        p.queue.append(.write(held))
        p.run()
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.count == 1 && p.installs.first?.1 == p.data)
        // A late resend of either transfer is answered complete, not started over.
        for t in [first, second ?? 0] {
            let c = SnapshotChunk(transfer: t, metadata: Self.meta, offset: 0, data: Array(p.data[0..<10]), checksum: 0, last: false)
            #expect(next(p.r.receive(c, from: 1, term: 3)) == 100)
        }
    }

    /// A different snapshot, or one from another node, still replaces the assembly being
    /// sealed as before.
    @Test func otherSnapshotStillReplacesTheSealingAssembly() {
        var r = SnapshotReceiver(me: 2, maxBytes: 1 << 20)
        guard case .write = r.receive(chunk(7, 0, [1], last: true), from: 1, term: 3) else { Issue.record("not written"); return }
        var newer = chunk(8, 0, [1], last: true)
        newer.metadata.index = 50
        guard case .write(let w) = r.receive(newer, from: 1, term: 3), w.begins else { Issue.record("newer not begun"); return }
        guard case .write = r.receive(chunk(9, 0, [1], last: true), from: 3, term: 4) else { Issue.record("other leader not begun"); return }
        #expect(r.assembly?.transfer == 9)
    }
}
