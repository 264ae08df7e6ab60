import RaftTestKit
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

    /// The last answer is lost: the sender resends, and the receiver says "complete" rather
    /// than making it start over.
    @Test func lostFinalAnswerDoesNotRestartTheTransfer() {
        var (s, r) = pair()
        let result = run(s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3), &s, &r) { m in
            if case .snapshotChunkAck(let a) = m.kind { return a.next == 100 }
            return false
        }
        #expect(result.install != nil && result.outcome == nil)
        _ = s.tick()
        let resent = s.tick().messages
        #expect(!resent.isEmpty)
        let again = run(resent, &s, &r)
        #expect(again.outcome == .finished(2))
        #expect(again.install == nil, "not installed twice")
        #expect(again.chunks <= 2, "no restart from zero")
    }

    /// A receiver that refuses every attempt (its checksum never matches) is given up on, even
    /// though each attempt makes progress until the end.
    @Test func receiverThatAlwaysRefusesIsGivenUpOn() {
        var (s, r) = pair(maxRetries: 2)
        var first = s.start(Snapshot(metadata: Self.meta, data: Self.data), to: 2, term: 3)
        // Damage every last chunk on the way.
        func damage(_ ms: [Message]) -> [Message] {
            ms.map { m in
                guard case .snapshotChunk(var c) = m.kind, c.offset + UInt64(c.data.count) == c.totalBytes, !c.data.isEmpty else { return m }
                c.data[0] ^= 0xFF
                return Message(from: m.from, to: m.to, term: m.term, kind: .snapshotChunk(c))
            }
        }
        var outcome: SnapshotSenders.Outcome?
        for _ in 0..<20 where outcome == nil {
            var queue = damage(first)
            first = []
            while let m = queue.first {
                queue.removeFirst()
                switch m.kind {
                case .snapshotChunk(let c):
                    if case .reply(let a) = r.receive(c, from: 1, term: 3) { queue.append(a) }
                case .snapshotChunkAck(let a):
                    let (more, o) = s.ack(a, from: 2)
                    queue += damage(more)
                    if let o { outcome = o }
                default: break
                }
            }
        }
        #expect(outcome == .failed(2))
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
