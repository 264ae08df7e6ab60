@testable import Raft
import Testing

/// Review of the follower ReadIndex path (issue 9): what a follower's core accepts as the answer
/// to its read-index request.
@Suite("Read review: follower answers (core)")
struct ReadReviewCoreTests {
    /// Three cores with CheckQuorum and PreVote; node 1 leads and every follower caught up.
    static func cluster() throws -> TestNet { try electedTrio() }

    /// Delivers what is in flight until the network is quiet, returning every read-index answer
    /// that was delivered.
    static func stabilizeCapturingAnswers(_ net: TestNet) throws -> [Message] {
        var answers: [Message] = []
        for _ in 0..<100 {
            try net.flush()
            if net.inFlight.isEmpty { break }
            answers += net.inFlight.filter {
                if case .readIndexResponse = $0.kind { return true }
                return false
            }
            try net.deliverRound()
        }
        return answers
    }

    /// `readIndex(context:)` says safety does not depend on a context being unique, and
    /// Reads.md that "an answer to an earlier round never confirms a later read". On a follower
    /// it does: the core turns any `readIndexResponse` of its term into a `ReadState`, matched
    /// by the caller only through the context. A duplicated (or late) answer to an earlier
    /// request with the same context confirms the later request at the old index, below a
    /// write that committed before the later request was made: a stale read.
    ///
    /// Expected of a correct core: after a write committed at index `c`, a read-index request
    /// made on the follower is never confirmed at an index below `c`.
    @Test func duplicatedOldAnswerDoesNotConfirmALaterRequest() throws {
        let net = try Self.cluster()
        let context = Array("a".utf8)
        try net[2].core.readIndex(context: context)
        let answers = try Self.stabilizeCapturingAnswers(net)
        let old = try #require(answers.first { $0.to == 2 })
        guard case .readIndexResponse(let first) = old.kind else { Issue.record("not an answer"); return }

        // A write commits on every node after that answer.
        _ = try net[1].core.propose(Array("x".utf8))
        try net.stabilize()
        let committed = net[1].core.log.committed
        try #require(committed > first.index)
        try #require(net[2].core.log.committed == committed)

        // The follower asks again with the same context; the request is on its way (held).
        try net[2].core.readIndex(context: context)
        _ = try net[2].drain()
        // The network delivers a duplicate of the first answer (Raft transports may duplicate).
        try net[2].core.step(old)
        let stale = net[2].core.readStates.filter { $0.index < committed }
        #expect(
            stale.isEmpty,
            "the follower confirmed a request made after index \(committed) committed at index \(stale.map(\.index)) (a duplicate of the answer to an earlier request)")
    }
}
