@testable import Raft
import Testing

/// `RaftConfiguration.maxReadRoundsInFlight`: reads that arrive while the limit of heartbeat
/// rounds is out wait for the next round, which leaves when one is answered; they are never
/// confirmed by answers to a round sent before they arrived.
@Suite("Read round limit (core)")
struct ReadRoundLimitTests {
    /// Three cores with CheckQuorum, PreVote and a limit of `limit` rounds; node 1 leads and
    /// every follower caught up.
    static func cluster(limit: Int = 1) throws -> TestNet { try electedTrio { $0.maxReadRoundsInFlight = limit } }

    static func heartbeats(_ d: Drained) -> [Message] { d.immediate.filter { $0.heartbeat != nil } }

    /// Node 2's answer to `heartbeat`, stepped into node 1; what node 1 then handed out.
    static func answer(_ heartbeat: Message, in net: TestNet) throws -> Drained {
        let answer = try net[2].receive(heartbeat).messages.filter { $0.to == 1 }
        #expect(answer.count == 1)
        var out = Drained()
        for m in answer {
            let d = try net[1].receive(m)
            out.immediate += d.immediate
            out.readStates += d.readStates
        }
        return out
    }

    @Test func aReadWaitsForTheRoundOutAndOnlyALaterRoundConfirmsIt() throws {
        let net = try Self.cluster()
        try net[1].core.readIndex(context: [1])
        let first = Self.heartbeats(try net[1].drain())
        #expect(first.map(\.to).sorted() == [2, 3])
        let round = try #require(first.first?.heartbeat?.round)

        // A second read while that round is out sends nothing.
        try net[1].core.readIndex(context: [2])
        let held = try net[1].drain()
        #expect(Self.heartbeats(held).isEmpty, "a read sent a second round while the limit was out")

        // The answer to the first round confirms only the first read, and sends the next round.
        let afterFirst = try Self.answer(try #require(first.first { $0.to == 2 }), in: net)
        #expect(afterFirst.readStates.map(\.context) == [[1]])
        let next = Self.heartbeats(afterFirst)
        #expect(next.count == 2 && next.allSatisfy { $0.heartbeat?.round == round + 1 })

        // An answer to the first round again (a duplicate) confirms nothing; one to the next does.
        let duplicate = try Self.answer(try #require(first.first { $0.to == 2 }), in: net)
        #expect(duplicate.readStates.isEmpty)
        let afterNext = try Self.answer(try #require(next.first { $0.to == 2 }), in: net)
        #expect(afterNext.readStates.map(\.context) == [[2]])
    }

    /// When the round out is lost, the waiting read is confirmed by the next heartbeat's round.
    @Test func aLostRoundIsReplacedByTheNextHeartbeat() throws {
        let net = try Self.cluster()
        try net[1].core.readIndex(context: [1])
        _ = try net[1].drain()  // the round is lost
        try net[1].core.readIndex(context: [2])
        #expect(Self.heartbeats(try net[1].drain()).isEmpty)
        try net[1].core.tick()
        let tick = Self.heartbeats(try net[1].drain())
        let heartbeat = try #require(tick.first { $0.to == 2 })
        let out = try Self.answer(heartbeat, in: net)
        #expect(out.readStates.map(\.context) == [[1], [2]])
    }

    /// Without a limit every read that finds no round queued sends its own.
    @Test func withoutALimitEachReadSendsItsRound() throws {
        let net = try Self.cluster(limit: 0)
        try net[1].core.readIndex(context: [1])
        let first = Self.heartbeats(try net[1].drain())
        try net[1].core.readIndex(context: [2])
        let second = Self.heartbeats(try net[1].drain())
        #expect(first.count == 2 && second.count == 2)
        #expect(second.first?.heartbeat?.round == (first.first?.heartbeat?.round ?? 0) + 1)
    }

    @Test func aNegativeLimitIsRefused() {
        var c = RaftConfiguration(id: 1)
        c.maxReadRoundsInFlight = -1
        #expect(throws: RaftError.self) { try c.validate() }
    }
}
