import Dispatch
@testable import Raft
import RaftTestKit
import Synchronization
import Testing

/// Records what a node sends to an id the test took over on the transport.
final class MessageRecorder: Sendable {
    private let seen = Mutex<[Message]>([])
    func record(_ m: Message) { seen.withLock { $0.append(m) } }
    var messages: [Message] { seen.withLock { $0 } }
}

/// Review of read7 (issue 9): steps taken while a batch is persisted.
@Suite("Review read7: reads during a persist")
struct ReviewRead7Tests {
    /// A leader whose write stalls gets no ticks (they wait for the write) and its lease guard
    /// (`allowLeaseReads`, refreshed before each batch of events) is not refreshed either, so
    /// its count of the lease stops while real time goes on. A follower's lease read-index
    /// request taken during the stall (`stepWithoutStorage`) is answered on that frozen lease,
    /// long after the lease ran out in real time and the followers were free to elect another
    /// leader. Here the leader is cut off from one follower and the other follower's id is
    /// taken over by a recorder: no quorum round can confirm anything, so any answer is a
    /// lease answer. 30 ticks (3 election timeouts) pass before the request arrives.
    @Test func stalledLeaderAnswersNoFollowerLeaseReadAfterItsLeaseRanOutInRealTime() async throws {
        let stalls: [NodeID: SyncStall] = [1: SyncStall(), 2: SyncStall(), 3: SyncStall()]
        let h = RaftNodeReadDuringPersistTests.harness(stalls) { $0.raft.readLease = ReadLease(maxClockDrift: 0.1) }
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v1")
        let node = h.nodes[leader]!
        #expect(try await h.answer { try await node.read(.lease) { $0.values["k"] ?? "" } } == "v1")
        let term = try await node.status().raft.term
        let followers = h.ids.filter { $0 != leader }
        let (cut, fake) = (followers[0], followers[1])

        let stall = stalls[leader]!
        let (writers, entered) = await stall.stallNextOverlappedWrite(of: node)
        try #require(entered, "no overlapped write happened")

        // The leader can reach no quorum from now on: one follower is cut off, the other's id
        // answers nothing (a recorder).
        h.transport.isolate(cut, true, from: [leader])
        let recorder = MessageRecorder()
        h.transport.unregister(fake)
        h.transport.register(fake, receive: { recorder.record($0) })

        // Three election timeouts of real time pass: the leader's ticks wait for its write.
        for _ in 0..<30 {
            h.clock.advance(by: .milliseconds(100))
            for _ in 0..<10_000 where h.clock.sleeperCount < h.ids.count { await Task.yield() }
            _ = try? await h.nodes[cut]!.status()
        }
        #expect(stall.isStalled)

        // A lease read-index request (as the follower would send) reaches the stalled leader.
        let context: [UInt8] = Array("review-read7".utf8)
        node.receive(Message(from: fake, to: leader, term: term, kind: .readIndex(ReadIndexRequest(context: context, confirmation: .lease))))
        for _ in 0..<100 { try await Task.sleep(for: .milliseconds(10)) }
        let answers = recorder.messages.filter {
            if case .readIndexResponse(let r) = $0.kind, r.context == context { return true }
            return false
        }
        #expect(answers.isEmpty, "a leader whose lease ran out 30 ticks ago in real time answered a lease read on it: \(answers)")

        stall.release.signal()
        for w in writers { _ = await w.result }
        await h.stopAll()
    }

    /// A leader whose disk write hangs takes no ticks, so it neither steps down (CheckQuorum)
    /// nor sends heartbeats of its own; before read7 the followers elected another leader
    /// after an election timeout. Now every linearizable read on a follower is forwarded to
    /// the stalled leader, which starts a heartbeat round for it during its write: each round
    /// resets the followers' election timers, so as long as reads come, no election happens and
    /// writes stay blocked behind the hung disk.
    @Test func readsDoNotKeepALeaderWithAHungDiskInOffice() async throws {
        try await Self.hungLeaderIsReplaced(readingOnAFollower: true)
    }

    /// The control: the same hung leader, no reads. A follower takes over (this passes).
    @Test func withoutReadsAFollowerTakesOverFromALeaderWithAHungDisk() async throws {
        try await Self.hungLeaderIsReplaced(readingOnAFollower: false)
    }

    static func hungLeaderIsReplaced(readingOnAFollower: Bool) async throws {
        let stalls: [NodeID: SyncStall] = [1: SyncStall(), 2: SyncStall(), 3: SyncStall()]
        let h = RaftNodeReadDuringPersistTests.harness(stalls)
        try h.startAll()
        let leader = try await h.electLeader()
        _ = try await h.write("k=v1")
        let node = h.nodes[leader]!
        let followers = h.ids.filter { $0 != leader }
        let reader = h.nodes[followers[0]]!
        #expect(try await h.answer { try await reader.read { $0.values["k"] ?? "" } } == "v1")

        let stall = stalls[leader]!
        let (writers, entered) = await stall.stallNextOverlappedWrite(of: node)
        try #require(entered, "no overlapped write happened")

        // 40 ticks (four election timeouts) with one linearizable read on a follower per tick.
        // Each read is left running (it is answered or not; the test does not wait for it, so
        // the 40 ticks pass well within the stall's own ten-second bound).
        let served = ServedReads()
        var readers: [Task<Void, Never>] = []
        var newLeader: NodeID?
        for _ in 0..<40 where newLeader == nil {
            if readingOnAFollower {
                readers.append(Task { if (try? await reader.read { $0.values["k"] ?? "" }) != nil { served.count.add(1, ordering: .relaxed) } })
                try await Task.sleep(for: .milliseconds(5))
            }
            h.clock.advance(by: .milliseconds(100))
            for _ in 0..<10_000 where h.clock.sleeperCount < h.ids.count { await Task.yield() }
            for id in followers where (try? await h.nodes[id]!.status())?.raft.role == .leader { newLeader = id }
        }
        #expect(stall.isStalled)
        #expect(newLeader != nil, "no follower took over from a leader whose write hung for 40 ticks (\(served.count.load(ordering: .relaxed)) reads kept it in office)")
        for r in readers { r.cancel() }

        stall.release.signal()
        for w in writers { _ = await w.result }
        await h.stopAll()
    }
}

/// How many reads a test's background readers had answered.
final class ServedReads: Sendable {
    let count = Atomic<Int>(0)
}
