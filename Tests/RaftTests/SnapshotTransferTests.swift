import Testing

@testable import Raft

/// The chunked snapshot stream between a sender and a receiver, message by message.
@Suite("Snapshot transfer")
struct SnapshotTransferTests {
    static let meta = SnapshotMetadata(index: 40, term: 3, confState: ConfState(voters: [1, 2, 3]))
    static let data: [UInt8] = (0..<100).map { UInt8($0) }

    func pair(chunk: Int = 10, window: Int = 2, retryTicks: Int = 2, maxRetries: Int = 3) -> (SnapshotSenders, SnapshotReceiver) {
        let options = SnapshotStreamOptions(chunkBytes: chunk, chunksInFlight: window, retryTicks: retryTicks, maxRetries: maxRetries)
        return (SnapshotSenders(me: 1, options: options, seed: 100), SnapshotReceiver(me: 2, maxBytes: 1 << 20))
    }

    /// Delivers `messages` to the receiver, and its answers back to the sender, until quiet,
    /// losing what `lose` says. Returns the completed install message, if any, and the outcome.
    func run(
        _ messages: [Message], _ s: inout SnapshotSenders, _ r: inout SnapshotReceiver, lose: (Message) -> Bool = { _ in false }
    ) -> (install: Message?, outcome: SnapshotSenders.Outcome?, chunks: Int) {
        var queue = messages
        var install: Message?
        var outcome: SnapshotSenders.Outcome?
        var chunks = 0
        while !queue.isEmpty {
            let m = queue.removeFirst()
            if lose(m) { continue }
            switch m.kind {
            case .snapshotChunk(let c):
                chunks += 1
                switch r.receive(c, from: m.from, term: m.term) {
                case .reply(let a): queue.append(a)
                case .complete(let i, let a):
                    install = i
                    queue.append(a)
                case .invalid(let why): Issue.record("invalid: \(why)")
                }
            case .snapshotChunkAck(let a):
                let (more, o) = s.ack(a, from: m.from)
                queue += more
                if let o { outcome = o }
            default:
                Issue.record("unexpected \(m.kind)")
            }
        }
        return (install, outcome, chunks)
    }

    @Test func streamsInChunksAndReassembles() {
        var (s, r) = pair()
        let first = s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3)
        #expect(first.count == 2, "a window of two chunks")
        let (install, outcome, chunks) = run(first, &s, &r)
        #expect(chunks == 10)
        #expect(outcome == .finished(2))
        guard case .installSnapshot(let i)? = install?.kind else {
            Issue.record("no install message")
            return
        }
        #expect(i.snapshot.data == Self.data && i.snapshot.metadata == Self.meta)
        #expect(install?.from == 1 && install?.to == 2 && install?.term == 3)
        #expect(s.transfers.isEmpty)
    }

    @Test func emptySnapshotIsOneChunk() {
        var (s, r) = pair()
        let (install, outcome, chunks) = run(s.start(Snapshot(metadata: Self.meta, data: []), to: 2, term: 3), &s, &r)
        #expect(chunks == 1 && outcome == .finished(2) && install != nil)
    }

    /// A lost chunk stalls the window; after `retryTicks` the sender resends from the last
    /// acknowledged byte, not from zero.
    @Test func lostChunkIsResentFromLastAcknowledgedByte() {
        var (s, r) = pair()
        var lostOnce = false
        let lose: (Message) -> Bool = { m in
            if case .snapshotChunk(let c) = m.kind, c.offset == 30, !lostOnce {
                lostOnce = true
                return true
            }
            return false
        }
        var result = run(s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3), &s, &r, lose: lose)
        #expect(result.outcome == nil, "stalled")
        #expect(s.transfers[2]?.acked == 30)
        #expect(s.tick().messages.isEmpty, "one tick is not yet a stall")
        let resent = s.tick().messages
        guard case .snapshotChunk(let c)? = resent.first?.kind else {
            Issue.record("nothing resent")
            return
        }
        #expect(c.offset == 30, "resumed where the receiver stands")
        result = run(resent, &s, &r)
        #expect(result.outcome == .finished(2))
        guard case .installSnapshot(let i)? = result.install?.kind else {
            Issue.record("no install message")
            return
        }
        #expect(i.snapshot.data == Self.data)
    }

    /// A receiver that lost the transfer (it restarted) answers zero; the sender starts over.
    @Test func receiverThatRestartedGetsTheTransferFromTheStart() {
        var (s, r) = pair()
        let first = s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3)
        // Deliver the first window only, then the receiver restarts.
        for m in first {
            guard case .snapshotChunk(let c) = m.kind else { continue }
            _ = r.receive(c, from: 1, term: 3)
        }
        r = SnapshotReceiver(me: 2, maxBytes: 1 << 20)
        // The sender's next window reaches the fresh receiver, which answers "from zero".
        let (more, _) = s.ack(SnapshotChunkAck(transfer: s.transfers[2]!.id, next: 20), from: 2)
        let result = run(more, &s, &r)
        #expect(result.outcome == .finished(2))
        guard case .installSnapshot(let i)? = result.install?.kind else {
            Issue.record("no install message")
            return
        }
        #expect(i.snapshot.data == Self.data)
    }

    /// Stalls in a row beyond `maxRetries` give the transfer up, so the core can try again.
    @Test func repeatedStallsGiveUp() {
        var (s, _) = pair(retryTicks: 1, maxRetries: 2)
        _ = s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3)
        var outcomes: [SnapshotSenders.Outcome] = []
        for _ in 0..<5 { outcomes += s.tick().outcomes }
        #expect(outcomes == [.failed(2)])
        #expect(s.transfers.isEmpty)
    }

    /// Damaged or hostile chunks are refused without taking memory or changing state.
    @Test func badChunksAreRefused() {
        var (_, r) = pair()
        let sum = Self.data.withUnsafeBytes { CRC32C.update(0, $0) }
        func chunk(offset: UInt64, total: UInt64 = 100, checksum: UInt32 = sum, data: [UInt8]) -> SnapshotChunk {
            SnapshotChunk(transfer: 9, metadata: Self.meta, offset: offset, totalBytes: total, checksum: checksum, data: data)
        }
        // Overruns the declared size.
        if case .invalid = r.receive(chunk(offset: 95, data: Array(repeating: 0, count: 10)), from: 1, term: 3) {} else {
            Issue.record("an overrunning chunk was accepted")
        }
        // Larger than the receiver accepts: refused before anything is allocated.
        if case .reply(let m) = r.receive(chunk(offset: 0, total: 1 << 40, data: []), from: 1, term: 3),
            case .snapshotChunkAck(let a) = m.kind
        {
            #expect(a.rejected)
        } else {
            Issue.record("an oversized snapshot was not refused")
        }
        #expect(r.assembly == nil)
        // Wrong checksum: refused once complete, nothing installed.
        var damaged = Self.data
        damaged[50] ^= 0xFF
        _ = r.receive(chunk(offset: 0, data: Array(damaged[0..<50])), from: 1, term: 3)
        if case .reply(let m) = r.receive(chunk(offset: 50, data: Array(damaged[50...])), from: 1, term: 3),
            case .snapshotChunkAck(let a) = m.kind
        {
            #expect(a.rejected, "a checksum mismatch is refused")
        } else {
            Issue.record("a damaged snapshot was installed")
        }
        // A chunk past zero of an unknown transfer: "start over".
        if case .reply(let m) = r.receive(chunk(offset: 40, data: [1, 2]), from: 1, term: 3), case .snapshotChunkAck(let a) = m.kind {
            #expect(a.next == 0 && !a.rejected)
        } else {
            Issue.record("an unknown transfer was not answered with zero")
        }
    }

    /// The core refuses chunk messages: only whole snapshots reach it.
    @Test func coreRefusesChunks() throws {
        var core = try RaftCore(configuration: RaftConfiguration(id: 2), storage: MemoryLogStorage(voters: [1, 2, 3]))
        let c = SnapshotChunk(transfer: 1, metadata: Self.meta, offset: 0, totalBytes: 0, checksum: 0, data: [])
        #expect(throws: RaftError.self) { try core.step(Message(from: 1, to: 2, term: 3, kind: .snapshotChunk(c))) }
    }
}
