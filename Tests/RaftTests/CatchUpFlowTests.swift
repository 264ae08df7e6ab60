import Testing

@testable import Raft

/// A follower far behind the leader's log (a learner just added, a node back from a partition)
/// is caught up in small messages with a bounded number of bytes in flight
/// (``RaftConfiguration/catchUpMaxInflightBytes``), so the replay never crowds out the appends
/// the quorum is waiting for.
@Suite("Catch-up flow control")
struct CatchUpFlowTests {
    /// A leader of term 1 whose follower 2 holds all of 400 entries of 100-byte commands and
    /// whose follower 3 has not answered its first probe yet.
    static func leaderWithALaggingFollower(limit: Int) throws -> TestNode {
        let leader = try TestNode(1, config: paperConfig(1) { $0.catchUpMaxInflightBytes = limit })
        try elect(leader, votesFrom: [2])
        for _ in 0..<40 {
            _ = try leader.core.propose(commands: Array(repeating: [UInt8](repeating: 7, count: 100), count: 10))
            try leader.drain()
        }
        try leader.receive(appendAck(from: 2, to: 1, term: leader.core.term, index: leader.core.lastIndex))
        return leader
    }

    static func sent(_ m: [Message]) -> [AppendEntries] { m.filter { $0.to == 3 }.compactMap(\.appendEntries) }

    @Test func aLaggingFollowerGetsSmallMessagesAndABoundedWindow() throws {
        let limit = 4096
        let leader = try Self.leaderWithALaggingFollower(limit: limit)
        let last = leader.core.lastIndex
        let term = leader.core.term
        // Node 3 answers the probe for the no-op: it is in replicate state and 400 entries behind.
        var appends = Self.sent(try leader.receive(appendAck(from: 3, to: 1, term: term, index: 1)).messages)
        var received: [LogEntry] = []
        var rounds = 0
        while !appends.isEmpty {
            rounds += 1
            let inFlight = appends.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.byteSize } }
            for a in appends {
                let bytes = a.entries.reduce(0) { $0 + $1.byteSize }
                #expect(bytes <= limit / 4 || a.entries.count == 1, "a message of \(bytes) bytes")
            }
            #expect(inFlight <= limit + limit / 4, "\(inFlight) bytes sent before an acknowledgement")
            for a in appends { received += a.entries }
            // Node 3 acknowledges everything it got; the leader sends the next window.
            appends = Self.sent(try leader.receive(appendAck(from: 3, to: 1, term: term, index: received.last!.index)).messages)
            #expect(rounds < 100)
            if rounds >= 100 { break }
        }
        // Every entry arrived, in order, without gaps, in several windows.
        #expect(received.map(\.index) == Array(LogIndex(2)...last).map { $0 })
        #expect(rounds > 5)
        #expect(leader.core.status().members.first { $0.id == 3 }?.match == last)
    }

    /// Without the limit the same follower gets the whole lag in the first message (it fits in
    /// ``RaftConfiguration/maxMessageBytes``): the option is what bounds the burst.
    @Test func withoutTheLimitTheWholeLagGoesAtOnce() throws {
        let leader = try Self.leaderWithALaggingFollower(limit: 0)
        let appends = Self.sent(try leader.receive(appendAck(from: 3, to: 1, term: leader.core.term, index: 1)).messages)
        #expect(appends.count == 1)
        #expect(appends.first?.entries.count == 400)
    }

    /// A follower held back whose window was lost (its acknowledgements, or the appends
    /// themselves) gets more once it answers a heartbeat: replication never stops.
    @Test func aHeldBackFollowerWhoseWindowWasLostGetsMoreOnAHeartbeat() throws {
        let leader = try Self.leaderWithALaggingFollower(limit: 4096)
        let term = leader.core.term
        let window = Self.sent(try leader.receive(appendAck(from: 3, to: 1, term: term, index: 1)).messages)
        #expect(!window.isEmpty)
        // Nothing of the window is acknowledged; a proposal sends node 3 nothing more.
        _ = try leader.core.propose(commands: [[1]])
        #expect(Self.sent(try leader.drain().messages).isEmpty)
        // Each heartbeat answer frees a message of the window, and the leader sends again.
        let again = Self.sent(
            try leader.receive(Message(from: 3, to: 1, term: term, kind: .heartbeatResponse(HeartbeatResponse()))).messages)
        #expect(!again.isEmpty)
    }

    /// A follower that keeps up gets a batch larger than a catch-up message in one append:
    /// it lacks only entries not yet committed, so it is not limited.
    @Test func aLargeBatchGoesToAFollowerThatKeepsUpAtOnce() throws {
        let leader = try stableLeader { $0.catchUpMaxInflightBytes = 4096 }
        _ = try leader.core.propose(commands: Array(repeating: [UInt8](repeating: 3, count: 5000), count: 10))
        let d = try leader.drain()
        for peer: NodeID in [2, 3] {
            let appends = d.messages.filter { $0.to == peer }.compactMap(\.appendEntries)
            #expect(appends.count == 1 && appends.first?.entries.count == 10, "node \(peer): \(appends.map(\.entries.count))")
        }
    }

    /// A follower that keeps up gets each batch at once, however large the lag of another.
    @Test func aFollowerThatKeepsUpIsNotHeldBack() throws {
        let leader = try Self.leaderWithALaggingFollower(limit: 4096)
        let term = leader.core.term
        _ = try leader.receive(appendAck(from: 3, to: 1, term: term, index: 1))
        _ = try leader.core.propose(commands: Array(repeating: [UInt8](repeating: 1, count: 20), count: 5))
        let d = try leader.drain()
        let toTwo = d.messages.filter { $0.to == 2 }.compactMap(\.appendEntries)
        #expect(toTwo.reduce(0) { $0 + $1.entries.count } == 5)
    }
}
