@testable import Raft
import Testing

/// `RaftCore.stepWithoutStorage(_:)`, `readIndexWithoutStorage(context:confirmation:)` and
/// `takeInterimOutput()`: the steps of read rounds a shell takes between `ready()` and
/// `advance(_:)` while another thread persists the batch.
@Suite("Read rounds during a persist (core)")
struct InterimStepTests {
    static func cluster() throws -> TestNet { try electedTrio() }

    static func round(_ m: Message) -> UInt64? {
        switch m.kind {
        case .heartbeat(let h): h.round
        case .heartbeatResponse(let r): r.round
        default: nil
        }
    }

    /// A read registered while the leader's batch is in flight goes out as a heartbeat round at
    /// once; a follower answers it at once; the answers confirm the read at the commit index it
    /// arrived at, before the batch is advanced, and send the round a later read waits for.
    /// Stepping the same answers again afterwards confirms nothing twice.
    @Test func aReadRoundCompletesWhileABatchIsInFlight() throws {
        let net = try Self.cluster()
        let committed = net[1].core.commitIndex
        _ = try net[1].core.propose(Array("x".utf8))
        let rd = try net[1].core.ready()
        try #require(!rd.entries.isEmpty)

        let registered = net[1].core.readIndexWithoutStorage(context: [7])
        #expect(registered)
        let out = net[1].core.takeInterimOutput()
        #expect(out.readStates.isEmpty)
        let heartbeats = out.messages.filter { Self.round($0) != nil }
        #expect(heartbeats.map(\.to).sorted() == [2, 3])
        let round = try #require(heartbeats.first.flatMap(Self.round))
        #expect(round > 0 && heartbeats.allSatisfy { Self.round($0) == round })

        // A read after the round left waits for the next one (one round out at most, the
        // default): nothing leaves yet.
        let registeredAgain = net[1].core.readIndexWithoutStorage(context: [8])
        #expect(registeredAgain)
        #expect(net[1].core.interimOutbox.isEmpty)

        // Node 2 answers the first round at once (its term is durable); one answer and the
        // leader make a quorum.
        let toTwo = try #require(heartbeats.first { $0.to == 2 })
        let answered = net[2].core.stepWithoutStorage(toTwo)
        #expect(answered)
        let answers = net[2].core.takeInterimOutput().messages
        #expect(answers.count == 1 && answers.first.flatMap(Self.round) == round && answers.first?.to == 1)
        let answer = try #require(answers.first)
        let handledWhole = net[1].core.stepWithoutStorage(answer)
        #expect(!handledWhole, "the rest of a heartbeat answer waits for step(_:)")
        let released = net[1].core.takeInterimOutput()
        #expect(released.readStates == [ReadState(index: committed, context: [7])])
        // The answer released the next round, for the second read, at once.
        let second = released.messages.compactMap(Self.round)
        #expect(second.count == 2 && second.allSatisfy { $0 == round + 1 })

        // The batch is persisted and advanced; the answer stepped in full confirms nothing new.
        try net[1].storage.append(rd.entries)
        if let hs = rd.hardState { net[1].storage.setHardState(hs) }
        try net[1].core.advance(rd)
        try net[1].core.step(answer)
        let after = try net[1].core.ready()
        #expect(after.readStates.isEmpty)
    }

    /// An answer in another term, or to a round never sent, confirms nothing; a leader that
    /// has not committed an entry of its term takes no read this way.
    @Test func answersOutsideTheTermOrRoundConfirmNothing() throws {
        let net = try Self.cluster()
        let registered = net[1].core.readIndexWithoutStorage(context: [1])
        #expect(registered)
        let round = try #require(net[1].core.takeInterimOutput().messages.compactMap(Self.round).first)
        let term = net[1].core.term
        for m in [
            Message(from: 2, to: 1, term: term.next, kind: .heartbeatResponse(HeartbeatResponse(round: round))),
            Message(from: 2, to: 1, term: term, kind: .heartbeatResponse(HeartbeatResponse(round: round + 1))),
            Message(from: 9, to: 1, term: term, kind: .heartbeatResponse(HeartbeatResponse(round: round))),
        ] {
            let handled = net[1].core.stepWithoutStorage(m)
            #expect(!handled)
            let nothingOut = net[1].core.takeInterimOutput().isEmpty
            #expect(nothingOut)
        }

    }

    /// A leader whose no-op has not committed yet (its commit index may be behind the
    /// cluster's) takes no read without storage: the read waits for step(_:)'s path.
    @Test func aLeaderBeforeItsNoOpCommitsTakesNoRead() throws {
        let leader = try TestNode(1)
        try elect(leader, votesFrom: [2])
        try #require(leader.core.role == .leader && !leader.core.termCommitted)
        let registered = leader.core.readIndexWithoutStorage(context: [1])
        #expect(!registered)
        let request = Message(from: 2, to: 1, term: leader.core.term, kind: .readIndex(ReadIndexRequest(context: [2])))
        let handled = leader.core.stepWithoutStorage(request)
        #expect(!handled)
        let nothingOut = leader.core.takeInterimOutput().isEmpty
        #expect(nothingOut)
    }

    /// Nothing is taken while the term or vote in memory are not yet durable: a follower that
    /// just learned a later term from a heartbeat answers no heartbeat and forwards no read
    /// until that term is persisted.
    @Test func nothingIsTakenBeforeTheTermIsDurable() throws {
        let follower = try TestNode(2, hardState: HardState(term: 1, vote: .none, commit: .zero))
        let hb = heartbeatMsg(from: 1, to: 2, term: 2)
        try follower.core.step(hb)
        #expect(follower.core.term == 2 && follower.core.leader == 1)
        let rd = try follower.core.ready()
        let answered = follower.core.stepWithoutStorage(hb)
        #expect(!answered)
        let forwarded = follower.core.readIndexWithoutStorage(context: [1])
        #expect(!forwarded)
        let nothingOut = follower.core.takeInterimOutput().isEmpty
        #expect(nothingOut)
        if let hs = rd.hardState { follower.storage.setHardState(hs) }
        try follower.core.advance(rd)
        let answeredLater = follower.core.stepWithoutStorage(hb)
        #expect(answeredLater)
        let forwardedLater = follower.core.readIndexWithoutStorage(context: [1])
        #expect(forwardedLater)
        let out = follower.core.takeInterimOutput().messages
        #expect(out.count == 2 && out.allSatisfy { $0.to == 1 })
    }
}
