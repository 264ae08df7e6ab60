import RaftTestKit
import Testing

@testable import Raft

/// A sender and a receiver with the node's transfer-thread work done in line: the sender's
/// streams read an in-memory copy through the real ``SnapshotChunkReader``, the receiver's chunks
/// go through the real ``ReceivedSnapshotWriter`` into an in-memory output. Messages, reads and
/// writes queue up in one FIFO, as they would on the loop's inbox.
struct TransferPipe {
    enum Work {
        case message(Message)
        case read(SnapshotSenders.Read)
        case write(SnapshotReceiver.Write)
    }

    var s: SnapshotSenders
    var r: SnapshotReceiver
    var data: [UInt8]
    var queue: [Work] = []
    var streams: [UInt64: SnapshotChunkReader] = [:]
    var writer: (transfer: UInt64, writer: ReceivedSnapshotWriter)?
    /// What completed: the metadata and the bytes written.
    var installs: [(SnapshotMetadata, [UInt8])] = []
    var outcomes: [SnapshotSenders.Outcome] = []
    var chunks = 0
    var reads = 0
    var streamsOpened = 0
    var damagedWrites = 0
    var maxBuffered = 0
    var lose: (Message) -> Bool = { _ in false }
    var damage: (SnapshotChunk) -> SnapshotChunk = { $0 }

    init(data: [UInt8], chunk: Int = 10, window: Int = 2, retryTicks: Int = 2, maxRetries: Int = 3, maxBytes: UInt64 = 1 << 20) {
        let options = SnapshotStreamOptions(chunkBytes: chunk, chunksInFlight: window, retryTicks: retryTicks, maxRetries: maxRetries)
        s = SnapshotSenders(me: 1, options: options, seed: 100)
        r = SnapshotReceiver(me: 2, maxBytes: maxBytes)
        self.data = data
    }

    mutating func take(_ e: SnapshotSenders.Effects) {
        queue += e.messages.map(Work.message)
        queue += e.reads.map(Work.read)
        outcomes += e.outcomes
        maxBuffered = max(maxBuffered, s.bufferedBytes)
    }

    /// Runs until nothing is left to do.
    mutating func run() {
        while !queue.isEmpty { step(queue.removeFirst()) }
    }

    mutating func step(_ w: Work) {
        switch w {
        case .read(let rd):
            if rd.opensStream {
                streams[rd.transfer] = SnapshotChunkReader(input: SnapshotInput(data), chunkBytes: s.options.chunkBytes)
                streamsOpened += 1
            }
            guard let reader = streams[rd.transfer] else {
                Issue.record("read of a stream never opened")
                return
            }
            reads += 1
            take(s.read(try! reader.next(), peer: rd.peer, transfer: rd.transfer))
        case .write(let wr):
            if wr.begins { writer = (wr.transfer, ReceivedSnapshotWriter(output: SnapshotOutput(inMemory: wr.metadata))) }
            guard let w = writer, w.transfer == wr.transfer else { return }
            let ok = try! w.writer.write(wr.piece)
            if !ok { damagedWrites += 1 }
            switch r.stored(transfer: wr.transfer, from: wr.from, end: wr.piece.end, last: wr.piece.last, damaged: !ok) {
            case .stale: break
            case .reply(let a): queue.append(.message(a))
            case .complete(let from, let term, let metadata, let replies):
                #expect(from == 1 && term == 3)
                installs.append((metadata, w.writer.output.data))
                queue += replies.map(Work.message)
            }
        case .message(let m):
            if lose(m) { return }
            switch m.kind {
            case .snapshotChunk(let c):
                chunks += 1
                switch r.receive(damage(c), from: m.from, term: m.term) {
                case .reply(let a): queue.append(.message(a))
                case .write(let wr): queue.append(.write(wr))
                case .invalid(let why): Issue.record("invalid: \(why)")
                }
            case .snapshotChunkAck(let a):
                take(s.ack(a, from: m.from))
            default:
                Issue.record("unexpected \(m.kind)")
            }
        }
    }
}

/// The chunked snapshot stream between a sender and a receiver, message by message.
@Suite("Snapshot transfer")
struct SnapshotTransferTests {
    static let meta = SnapshotMetadata(index: 40, term: 3, confState: ConfState(voters: [1, 2, 3]))
    static let data: [UInt8] = (0..<100).map { UInt8($0) }

    @Test func streamsInChunksAndVerifiesThemAsTheyArrive() {
        var p = TransferPipe(data: Self.data)
        let first = p.s.start(Self.meta, to: 2, term: 3)
        #expect(first.messages.isEmpty && first.reads == [SnapshotSenders.Read(peer: 2, transfer: 101, opensStream: true)], "it reads before it sends")
        p.take(first)
        p.run()
        #expect(p.chunks == 10)
        #expect(p.reads == 10 && p.streamsOpened == 1, "each piece is read once")
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.count == 1)
        #expect(p.installs.first?.0 == Self.meta && p.installs.first?.1 == Self.data)
        #expect(p.s.transfers.isEmpty)
        #expect(p.maxBuffered <= 20, "never more than the window in memory: \(p.maxBuffered)")
    }

    @Test func emptySnapshotIsOneChunk() {
        var p = TransferPipe(data: [])
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        p.run()
        #expect(p.chunks == 1 && p.outcomes == [.finished(2)] && p.installs.count == 1 && p.installs.first?.1 == [])
    }

    /// The window bounds what a sender holds, however large the snapshot: it reads ahead only
    /// as far as the receiver's acknowledgement plus the window.
    @Test func theWindowBoundsWhatTheSenderHolds() {
        let big = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var p = TransferPipe(data: big, chunk: 100, window: 4)
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        p.run()
        #expect(p.installs.first?.1 == big)
        #expect(p.chunks == 500 && p.reads == 500)
        #expect(p.maxBuffered <= 400, "held \(p.maxBuffered) bytes of a \(big.count)-byte snapshot")
    }

    /// A lost chunk stalls the window; after `retryTicks` the sender resends from the last
    /// acknowledged byte, not from zero, from the pieces it holds (no read again).
    @Test func lostChunkIsResentFromLastAcknowledgedByte() {
        var p = TransferPipe(data: Self.data)
        var lostOnce = false
        p.lose = { m in
            if case .snapshotChunk(let c) = m.kind, c.offset == 30, !lostOnce {
                lostOnce = true
                return true
            }
            return false
        }
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        p.run()
        #expect(p.outcomes.isEmpty, "stalled")
        #expect(p.s.transfers[2]?.acked == 30)
        let reads = p.reads
        #expect(p.s.tick().isEmpty, "one tick is not yet a stall")
        let resent = p.s.tick()
        guard case .snapshotChunk(let c)? = resent.messages.first?.kind else {
            Issue.record("nothing resent")
            return
        }
        #expect(c.offset == 30, "resumed where the receiver stands")
        #expect(resent.reads.isEmpty, "resent from memory")
        p.take(resent)
        p.run()
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.first?.1 == Self.data)
        #expect(p.reads == 10 && reads < 10, "every piece read once")
    }

    /// A receiver that lost the transfer (it restarted) answers zero; the sender starts over,
    /// from a new stream.
    @Test func receiverThatRestartedGetsTheTransferFromTheStart() {
        var p = TransferPipe(data: Self.data)
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        // Deliver until 40 bytes are acknowledged, then the receiver restarts.
        while let w = p.queue.first, (p.s.transfers[2]?.acked ?? 0) < 40 {
            p.queue.removeFirst()
            p.step(w)
        }
        p.r = SnapshotReceiver(me: 2, maxBytes: 1 << 20)
        p.writer = nil
        p.run()
        #expect(p.outcomes == [.finished(2)])
        #expect(p.streamsOpened == 2)
        #expect(p.installs.count == 1 && p.installs.first?.1 == Self.data)
    }

    /// The last answer is lost: the sender resends, and the receiver says "complete" rather
    /// than making it start over.
    @Test func lostFinalAnswerDoesNotRestartTheTransfer() {
        var p = TransferPipe(data: Self.data)
        p.lose = { m in
            if case .snapshotChunkAck(let a) = m.kind { return a.next == 100 }
            return false
        }
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        p.run()
        #expect(p.installs.count == 1 && p.outcomes.isEmpty)
        _ = p.s.tick()
        let resent = p.s.tick()
        #expect(!resent.messages.isEmpty)
        p.lose = { _ in false }
        let chunks = p.chunks
        p.take(resent)
        p.run()
        #expect(p.outcomes == [.finished(2)])
        #expect(p.installs.count == 1, "not installed twice")
        #expect(p.chunks - chunks <= 2, "no restart from zero")
    }

    /// A receiver that refuses every attempt (a chunk's checksum never matches) is given up
    /// on, even though each attempt makes progress until the end.
    @Test func receiverThatAlwaysRefusesIsGivenUpOn() {
        var p = TransferPipe(data: Self.data, maxRetries: 2)
        p.damage = { c in
            guard c.last else { return c }
            var d = c
            d.data[0] ^= 0xFF
            return d
        }
        p.take(p.s.start(Self.meta, to: 2, term: 3))
        p.run()
        #expect(p.outcomes == [.failed(2)])
        #expect(p.installs.isEmpty)
        #expect(p.damagedWrites == 3, "caught by the running checksum, before it was written")
    }

    /// Stalls in a row beyond `maxRetries` give the transfer up, so the core can try again.
    @Test func repeatedStallsGiveUp() {
        var p = TransferPipe(data: Self.data, retryTicks: 1, maxRetries: 2)
        _ = p.s.start(Self.meta, to: 2, term: 3)
        var outcomes: [SnapshotSenders.Outcome] = []
        for _ in 0..<5 { outcomes += p.s.tick().outcomes }
        #expect(outcomes == [.failed(2)])
        #expect(p.s.transfers.isEmpty)
    }

    /// A stream that is not the storage's snapshot any more is abandoned: the core sends the
    /// new one.
    @Test func abandonedTransferFails() {
        var p = TransferPipe(data: Self.data)
        let e = p.s.start(Self.meta, to: 2, term: 3)
        let read = try! #require(e.reads.first)
        #expect(p.s.abandon(2, transfer: read.transfer).outcomes == [.failed(2)])
        #expect(p.s.transfers.isEmpty)
        let stale = try! SnapshotChunkReader(input: SnapshotInput(Self.data), chunkBytes: 10).next()
        #expect(p.s.read(stale, peer: 2, transfer: read.transfer).isEmpty, "a stale read is dropped")
    }

    /// Damaged or hostile chunks are refused without taking memory or changing state.
    @Test func badChunksAreRefused() throws {
        var r = SnapshotReceiver(me: 2, maxBytes: 1 << 20)
        let sum = Self.data.withUnsafeBytes { CRC32C.update(0, $0) }
        func chunk(offset: UInt64, checksum: UInt32 = sum, data: [UInt8], last: Bool = false) -> SnapshotChunk {
            SnapshotChunk(transfer: 9, metadata: Self.meta, offset: offset, data: data, checksum: checksum, last: last)
        }
        // Larger than the receiver accepts: refused before anything is written.
        if case .reply(let m) = r.receive(chunk(offset: (1 << 20) - 1, data: [1, 2]), from: 1, term: 3), case .snapshotChunkAck(let a) = m.kind {
            #expect(a.rejected)
        } else {
            Issue.record("an oversized snapshot was not refused")
        }
        #expect(r.assembly == nil)
        // A chunk past zero of an unknown transfer: "start over".
        if case .reply(let m) = r.receive(chunk(offset: 40, data: [1, 2]), from: 1, term: 3), case .snapshotChunkAck(let a) = m.kind {
            #expect(a.next == 0 && !a.rejected)
        } else {
            Issue.record("an unknown transfer was not answered with zero")
        }
        // Wrong checksum: the writer refuses the piece, the receiver the transfer.
        guard case .write(let w) = r.receive(chunk(offset: 0, checksum: sum ^ 1, data: Self.data, last: true), from: 1, term: 3) else {
            Issue.record("the first chunk was not handed out to be written")
            return
        }
        let writer = ReceivedSnapshotWriter(output: SnapshotOutput(inMemory: Self.meta))
        #expect(try writer.write(w.piece) == false, "a checksum mismatch is caught")
        #expect(writer.output.data.isEmpty, "nothing written")
        guard case .reply(let m) = r.stored(transfer: 9, from: 1, end: 100, last: true, damaged: true), case .snapshotChunkAck(let a) = m.kind else {
            Issue.record("a damaged snapshot was not refused")
            return
        }
        #expect(a.rejected && r.assembly == nil)
        // Another chunk of the same transfer while its last one is being written: "all here,
        // being made durable" (the write gives the final answer).
        guard case .write = r.receive(chunk(offset: 0, data: Self.data, last: true), from: 1, term: 3) else {
            Issue.record("a new assembly did not start")
            return
        }
        guard case .reply(let s) = r.receive(chunk(offset: 0, data: Self.data, last: true), from: 1, term: 3),
            case .snapshotChunkAck(let sealing) = s.kind
        else {
            Issue.record("a duplicate of the last chunk being written was not answered")
            return
        }
        #expect(sealing.sealing && sealing.next == 100 && !sealing.rejected)
    }

    /// The core refuses chunk messages, and an install whose bytes were left in the sender's
    /// storage: only whole snapshots, or files a node received, reach it.
    @Test func coreRefusesChunksAndUnstreamedSnapshots() throws {
        var core = try RaftCore(configuration: RaftConfiguration(id: 2), storage: MemoryLogStorage(voters: [1, 2, 3]))
        let c = SnapshotChunk(transfer: 1, metadata: Self.meta, offset: 0, data: [], checksum: 0, last: true)
        #expect(throws: RaftError.self) { try core.step(Message(from: 1, to: 2, term: 3, kind: .snapshotChunk(c))) }
        let install = InstallSnapshot(metadata: Self.meta, data: .inSenderStorage)
        #expect(throws: RaftError.self) { try core.step(Message(from: 1, to: 2, term: 3, kind: .installSnapshot(install))) }
        #expect(core.term == .zero)
    }

    /// A leader configured for a streaming shell sends only the snapshot's metadata: it never
    /// reads the snapshot's data from storage.
    @Test func streamingLeaderNeverReadsSnapshotData() throws {
        let storage = SnapshotReadCountingStorage(MemoryLogStorage(voters: [1, 2]))
        try storage.base.append((1...5).map { LogEntry(term: 1, index: LogIndex(rawValue: $0)) })
        storage.base.setHardState(HardState(term: 1, vote: 1, commit: 5))
        try storage.base.createSnapshot(at: 5, data: [1, 2, 3])
        try storage.base.compact(upTo: 5)
        var core = try RaftCore(configuration: paperConfig(1) { $0.snapshotSending = .streamedByShell }, storage: storage)
        func drain() throws -> [Message] {
            var out: [Message] = []
            while core.hasReady {
                let rd = try core.ready()
                try storage.base.persist(rd)
                out += rd.messages + rd.messagesAfterPersist
                try core.advance(rd)
            }
            return out
        }
        try core.campaign()
        _ = try drain()
        try core.step(voteResponse(from: 2, to: 1, term: core.term, granted: true))
        _ = try drain()
        #expect(core.role == .leader)
        // Node 2 lost everything: the leader backs off to the start, then sends the snapshot.
        let reject = AppendEntriesResponse(index: 5, reject: true, rejectHint: .zero)
        try core.step(Message(from: 2, to: 1, term: core.term, kind: .appendEntriesResponse(reject)))
        let sent = try drain()
        let installs = sent.compactMap { m -> InstallSnapshot? in if case .installSnapshot(let s) = m.kind { s } else { nil } }
        #expect(installs.first?.metadata.index == 5)
        #expect(installs.first?.data == .inSenderStorage)
        #expect(storage.snapshotReads == 0)
    }
}

/// A `LogStorage` that counts whole-snapshot reads (``LogStorage/snapshot()``).
final class SnapshotReadCountingStorage: LogStorage {
    let base: MemoryLogStorage
    var snapshotReads = 0
    init(_ base: MemoryLogStorage) { self.base = base }
    func initialState() throws(RaftError) -> (HardState, ConfState) { try base.initialState() }
    func entries(in range: Range<LogIndex>, maxBytes: Int) throws(RaftError) -> [LogEntry] { try base.entries(in: range, maxBytes: maxBytes) }
    func term(at index: LogIndex) throws(RaftError) -> Term { try base.term(at: index) }
    func firstIndex() -> LogIndex { base.firstIndex() }
    func lastIndex() -> LogIndex { base.lastIndex() }
    func snapshot() throws(RaftError) -> Snapshot {
        snapshotReads += 1
        return try base.snapshot()
    }
    func snapshotMetadata() -> SnapshotMetadata { base.snapshotMetadata() }
}

/// Regressions found in review of the node runtime.
@Suite("Node runtime edge cases")
struct NodeRuntimeEdgeCaseTests {
    func ready(entries: ClosedRange<UInt64>?, committed: ClosedRange<UInt64>, term: UInt64 = 2) -> Ready {
        let e = entries.map { r in r.map { LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: $0)) } } ?? []
        let c = committed.map { LogEntry(term: Term(rawValue: term), index: LogIndex(rawValue: $0)) }
        return Ready(
            softState: nil, hardState: nil, snapshot: nil, entries: e, committedEntries: c, messages: [], messagesAfterPersist: [],
            readStates: [], mustSync: !e.isEmpty)
    }

    /// Only committed entries that were on disk before the batch, and that the batch does not
    /// replace, may be applied while the batch syncs.
    @Test func earlyApplyNeverIncludesEntriesTheBatchReplaces() {
        typealias Loop = NodeLoop<KVMachine>
        // A leader: everything committed is on its disk already.
        #expect(Loop.durableCommitted(ready(entries: 11...12, committed: 5...10), storageLastIndex: 10) == 6)
        // A follower appending new entries that are committed at once: they wait.
        #expect(Loop.durableCommitted(ready(entries: 11...12, committed: 9...12), storageLastIndex: 10) == 2)
        // A follower replacing a stale suffix 8...10 and committing it at once: 8...10 wait.
        #expect(Loop.durableCommitted(ready(entries: 8...10, committed: 6...10), storageLastIndex: 10) == 2)
        #expect(Loop.durableCommitted(ready(entries: 8...10, committed: 8...10), storageLastIndex: 10) == 0)
    }

    /// Terms and indexes near the top of UInt64 are refused as malformed, so no arithmetic on a
    /// peer's values can trap.
    @Test func outOfRangeTermsAndIndexesAreRefused() throws {
        var core = try RaftCore(configuration: RaftConfiguration(id: 2), storage: MemoryLogStorage(voters: [1, 2, 3]))
        let huge = Term(rawValue: UInt64.max)
        let bad: [Message] = [
            Message(from: 1, to: 2, term: huge, kind: .heartbeat(Heartbeat(commit: .zero))),
            Message(from: 1, to: 2, term: 5, kind: .heartbeat(Heartbeat(commit: LogIndex(rawValue: UInt64.max)))),
            Message(from: 1, to: 2, term: 5, kind: .requestVote(RequestVote(lastLogIndex: LogIndex(rawValue: 1 << 63), lastLogTerm: 1))),
            Message(
                from: 1, to: 2, term: 5,
                kind: .installSnapshot(
                    InstallSnapshot(
                        snapshot: Snapshot(metadata: SnapshotMetadata(index: LogIndex(rawValue: UInt64.max), term: 5, confState: ConfState(voters: [1, 2, 3])))
                    ))),
        ]
        for m in bad {
            #expect(throws: RaftError.self) { try core.step(m) }
        }
        #expect(core.term == .zero, "nothing changed")
    }

    /// A cancelled `run()` task stops the node the orderly way: what waits fails with `stopped`.
    @Test func cancellingRunStopsTheNode() async throws {
        let storage = MemoryLogStorage(voters: [1, 2, 3])
        let node = try RaftNode(
            configuration: RaftNodeConfiguration(id: 1), storage: storage, stateMachine: KVMachine(), transport: LocalTransport(),
            clock: ManualClock())
        let run = Task { try await node.run() }
        _ = try await node.status()
        run.cancel()
        try await run.value
        await #expect(throws: RaftError.self) { try await node.status() }
    }
}
