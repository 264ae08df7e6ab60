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
}
