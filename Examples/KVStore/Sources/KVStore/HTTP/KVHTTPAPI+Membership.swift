import Foundation
import Hummingbird
import NIOCore
import Raft
import RaftTransportTCP

extension KVHTTPAPI {
    /// The body of `POST /cluster/members`.
    struct AddMember: Decodable {
        /// The new member's id (not 0).
        var id: UInt64
        /// Where its peers reach it, `HOST:PORT`.
        var raft: String
        /// Where its clients reach it, `HOST:PORT` (optional: without it, redirects to it get 503).
        var http: String?
        /// `true` adds a learner (it receives the log, never votes); `false` (the default) a
        /// voter, which joins as a learner, catches up, and is then promoted.
        var learner: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable { case id, raft, http, learner }

        /// Decodes the body, refusing keys it does not know (a misspelt `learner` must not add
        /// a voter).
        init(from decoder: any Decoder) throws {
            try UnknownKeys.check(decoder, known: CodingKeys.allCases)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(UInt64.self, forKey: .id)
            raft = try c.decode(String.self, forKey: .raft)
            http = try c.decodeIfPresent(String.self, forKey: .http)
            learner = try c.decodeIfPresent(Bool.self, forKey: .learner)
        }
    }

    /// The body of `POST /cluster/leader`; an empty body (or no `id`) lets the leader choose.
    struct TransferLeader: Decodable {
        var id: UInt64?

        enum CodingKeys: String, CodingKey, CaseIterable { case id }

        /// Decodes the body, refusing keys it does not know (a misspelt `id` must not let the
        /// leader choose).
        init(from decoder: any Decoder) throws {
            try UnknownKeys.check(decoder, known: CodingKeys.allCases)
            id = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(UInt64.self, forKey: .id)
        }
    }

    /// A JSON body named keys its route does not take.
    struct UnknownKeys: Error, CustomStringConvertible {
        var unknown: [String]
        var known: [String]

        var description: String {
            "unknown key\(unknown.count == 1 ? "" : "s") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) (this route takes \(known.joined(separator: ", ")))"
        }

        /// Any key of a JSON object.
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Throws when the object `decoder` reads has a key outside `known`.
        static func check<K: CodingKey>(_ decoder: any Decoder, known: [K]) throws {
            let names = known.map(\.stringValue)
            let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter { !names.contains($0) }
            if !unknown.isEmpty { throw UnknownKeys(unknown: unknown.sorted(), known: names) }
        }
    }

    /// What a membership route answers: the membership once the change is committed (the
    /// members as `GET /cluster` shows them, without progress).
    struct MembershipAnswer: Encodable {
        var members: [ClusterAnswer.Member]
        var joint: Bool
    }

    /// `POST /cluster/members`: adds a voter (``Raft/RaftNode/addVoter(_:address:)``) or a
    /// learner (``Raft/RaftNode/addLearner(_:address:)``). The new node must run already,
    /// started to join (`kvstore serve --join`); the answer comes once the change is committed
    /// (for a voter: once it caught up and was promoted).
    func addMember(_ request: Request) async throws -> Response {
        guard let body = try await decode(AddMember.self, from: request, required: true) else {
            throw KVHTTPError.badRequest("badBody", "the body is empty: send {\"id\": N, \"raft\": \"HOST:PORT\", \"http\": \"HOST:PORT\"}")
        }
        guard body.id != 0 else { throw KVHTTPError.badRequest("badId", "id must be a non-zero number") }
        let member: KVMember
        do {
            member = KVMember(
                id: NodeID(rawValue: body.id), raftAddress: try PeerAddress(parsing: body.raft),
                httpAddress: try body.http.map { try PeerAddress(parsing: $0) })
            try member.checkMembershipAddress()
        } catch let e as RaftError {
            throw KVHTTPError.badRequest("badAddress", e.message)
        }
        guard member.raftAddress.port != 0, member.httpAddress?.port != 0 else {
            throw KVHTTPError.badRequest("badAddress", "a member's ports must not be 0")
        }
        try await redirectUnlessLeader(request)
        let membership = try await membershipChange(request) {
            if body.learner == true {
                try await raft.addLearner(member.id, address: member.membershipAddress)
            } else {
                try await raft.addVoter(member.id, address: member.membershipAddress)
            }
        }
        return membershipAnswer(membership)
    }

    /// `DELETE /cluster/members/{id}`: removes a voter or learner (``Raft/RaftNode/remove(_:)``).
    func removeMember(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let id = try memberID(context.parameters.get("id"))
        try await redirectUnlessLeader(request)
        return membershipAnswer(try await membershipChange(request) { try await raft.remove(id) })
    }

    /// `POST /cluster/leader`: hands leadership to the voter in the body, or, for an empty body,
    /// to the most caught-up other voter that the leader is replicating to (``Raft/RaftNode/transferLeadership(to:)``);
    /// answers once it leads. Naming the leader itself answers at once: it leads already.
    func transferLeader(_ request: Request) async throws -> Response {
        let requested = try await decode(TransferLeader.self, from: request, required: false)?.id
        try await redirectUnlessLeader(request)
        struct Answer: Encodable { var leader: UInt64 }
        let target: NodeID
        if let requested {
            target = try memberID("\(requested)")
            if target == node.id { return jsonResponse(Answer(leader: target.rawValue)) }
        } else {
            let status = try await raft.status().raft
            // A voter being probed or sent a snapshot is behind: it could not take over soon.
            let candidates = status.members.filter { $0.id != node.id && $0.role == .voter && $0.state == .replicate }
            guard let best = candidates.max(by: { $0.match < $1.match }) else {
                throw KVHTTPError.badRequest("noOtherVoter", "there is no other voter that is caught up enough to hand leadership to")
            }
            target = best.id
        }
        try await membershipChange(request) { try await raft.transferLeadership(to: target) }
        return jsonResponse(Answer(leader: target.rawValue))
    }

    // MARK: Helpers

    /// Runs a membership call; a `notLeader` refusal (leadership moved meanwhile) becomes a
    /// redirect, a step that timed out a 504 (``KVHTTPError/membershipTimeout(_:)``).
    @discardableResult
    func membershipChange<T>(_ request: Request, _ call: () async throws -> T) async throws -> T {
        do {
            return try await call()
        } catch let e as RaftError where e.code == .notLeader {
            throw redirect(request, to: e.leaderHint)
        } catch let e as RaftError where e.code == .timeout {
            throw KVHTTPError.membershipTimeout(e)
        }
    }

    /// On a follower that knows the leader: a 307 there (as for writes); without a leader: 503.
    func redirectUnlessLeader(_ request: Request) async throws {
        let status = try await raft.status().raft
        if status.role != .leader { throw redirect(request, to: status.leader) }
    }

    /// A member id from the path or a body.
    func memberID(_ text: String?) throws(KVHTTPError) -> NodeID {
        guard let text, let raw = UInt64(text), raw != 0 else {
            throw KVHTTPError.badRequest("badId", "a member id is a non-zero number, got '\(text ?? "")'")
        }
        return NodeID(rawValue: raw)
    }

    /// The request's JSON body as `T`; `nil` for an empty body unless `required`.
    func decode<T: Decodable>(_ type: T.Type, from request: Request, required: Bool) async throws -> T? {
        var request = request
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: 64 << 10) } catch is NIOTooManyBytesError {
            throw KVHTTPError.badRequest("badBody", "the body is larger than 64 KiB")
        }
        if buffer.readableBytes == 0 && !required { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch {
            throw KVHTTPError.badRequest("badBody", "the body is not the JSON this route takes (\(Self.describe(error)))")
        }
    }

    /// A decoding error in a sentence.
    static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _): "'\(key.stringValue)' is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): "'\(c.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case .dataCorrupted(let c): c.codingPath.isEmpty ? "not valid JSON" : "'\(c.codingPath.map(\.stringValue).joined(separator: "."))' is not valid"
        default: "\(error)"
        }
    }

    func membershipAnswer(_ membership: ConfState) -> Response {
        jsonResponse(MembershipAnswer(members: memberViews(membership), joint: membership.isJoint))
    }
}
