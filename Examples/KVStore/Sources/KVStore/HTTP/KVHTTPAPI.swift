import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import NIOCore
import Raft

/// The HTTP API of one ``KVNode``:
///
/// | route | does |
/// | --- | --- |
/// | `PUT /kv/{key}` | stores the body as the value; answers 204 once committed and applied |
/// | `PUT /kv/{key}?prev=V` | compare-and-swap: stores the body if the value is `V` (204), else 412 with the current value |
/// | `GET /kv/{key}` | the value (200, `application/octet-stream`) or 404; linearizable, or `?consistency=lease\|stale` |
/// | `DELETE /kv/{key}` | removes the key: 204, or 404 when it was absent |
/// | `GET /kv?prefix=P&after=K&limit=N` | up to N keys with prefix P after K, in order, with `next` for the following page |
/// | `GET /cluster` | what this node knows: members, their roles and addresses, leader, term, commit and applied index |
/// | `POST /cluster/members` | adds a member: `{"id": 4, "raft": "HOST:PORT", "http": "HOST:PORT", "learner": false}` |
/// | `DELETE /cluster/members/{id}` | removes a member |
/// | `POST /cluster/leader` | hands leadership to `{"id": N}`, or (empty body) to the most caught-up other voter |
/// | `POST /admin/snapshot` | takes a snapshot of this node's state now and compacts its log: `{"index": N}` |
/// | `GET /metrics` | Prometheus text: the node's, the transport's and the API's metrics |
/// | `GET /health` | 200 while the node runs |
/// | `GET /` | the status page |
///
/// Keys are the rest of the path after `/kv/`, percent-decoded, as UTF-8 (slashes allowed).
/// A write, or a linearizable or lease read, sent to a follower is answered with a redirect to
/// the leader's HTTP address (307, `Location`), so `curl -L` follows it; a stale read is served
/// where it lands. Bad input gets a 4xx and no quorum a 503 (after the node's proposal or read
/// timeout), each with a JSON body (``KVHTTPError``).
///
/// The membership routes answer once the change is committed (200 with the new membership),
/// and are redirected to the leader like writes. A change refused because another is
/// unfinished answers 409 (`membershipChangeInProgress`), an unknown member 404, a bad body or
/// id 400, and no leader or no quorum in time 503. Their outcome reaches every node's
/// ``KVClusterDirectory`` through the log.
struct KVHTTPAPI: Sendable {
    let node: KVNode
    var raft: RaftNode<SQLiteStateMachine> { node.raft }
    var limits: KVLimits { node.configuration.limits }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: KVErrorMiddleware())
        router.add(middleware: KVMetricsMiddleware(factory: node.metricsFactory))
        router.get("/") { _, _ in statusPage() }
        router.get("/health") { _, _ in try await health() }
        router.get("/metrics") { _, _ in metrics() }
        router.get("/cluster") { _, _ in try await cluster() }
        router.post("/cluster/members") { request, _ in try await addMember(request) }
        router.delete("/cluster/members/:id") { request, context in try await removeMember(request, context) }
        router.post("/cluster/leader") { request, _ in try await transferLeader(request) }
        router.post("/admin/snapshot") { _, _ in try await snapshot() }
        router.get("/kv") { request, _ in try await list(request) }
        router.get("/kv/**") { request, _ in try await get(request) }
        router.put("/kv/**") { request, _ in try await put(request) }
        router.delete("/kv/**") { request, _ in try await delete(request) }
        for method in [HTTPRequest.Method.put, .delete] {
            router.on("/kv", method: method) { _, _ -> Response in
                throw KVHTTPError.badRequest("emptyKey", "the key is empty: use /kv/{key}")
            }
        }
        return router
    }

    // MARK: Keys and values

    func put(_ request: Request) async throws -> Response {
        let key = try self.key(of: request)
        var request = request
        let body: ByteBuffer
        do { body = try await request.collectBody(upTo: limits.maxValueBytes) } catch is NIOTooManyBytesError {
            throw KVHTTPError(.contentTooLarge, "valueTooLarge", "the value is larger than \(limits.maxValueBytes) bytes")
        }
        let value = Array(buffer: body)
        let command: KVCommand
        if let prev = request.uri.queryParameters["prev"] {
            command = .compareAndSwap(key: key, expected: Array(prev.utf8), new: value)
        } else {
            command = .put(key: key, value: value)
        }
        switch try await propose(command, request) {
        case .stored, .swapped:
            return Response(status: .noContent)
        case .mismatch(let current):
            var e = KVHTTPError(.preconditionFailed, "mismatch", "the key's value is not the one given in prev; nothing changed")
            e.current = .some(current)
            throw e
        case .deleted, .rejected:
            throw KVHTTPError(.internalServerError, "internal", "the state machine answered a write with \(command)")
        }
    }

    func delete(_ request: Request) async throws -> Response {
        let key = try self.key(of: request)
        switch try await propose(.delete(key: key), request) {
        case .deleted(existed: true): return Response(status: .noContent)
        case .deleted(existed: false): throw KVHTTPError(.notFound, "noSuchKey", "there is no key \(String(decoding: key, as: UTF8.self))")
        default: throw KVHTTPError(.internalServerError, "internal", "the state machine answered a delete with something else")
        }
    }

    func get(_ request: Request) async throws -> Response {
        let key = try self.key(of: request)
        let value = try await read(request) { try $0.value(forKey: key) }
        guard let value else { throw KVHTTPError(.notFound, "noSuchKey", "there is no key \(String(decoding: key, as: UTF8.self))") }
        return Response(
            status: .ok, headers: [.contentType: "application/octet-stream"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: value)))
    }

    struct ListAnswer: Encodable {
        struct Entry: Encodable {
            var key: String
            var value: String?
            var valueBase64: String?
        }
        var entries: [Entry]
        /// The `after` of the next page; `nil` on the last.
        var next: String?
    }

    func list(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let prefix = Array((q["prefix"].map(String.init) ?? "").utf8)
        let after = q["after"].map { Array(String($0).utf8) }
        var limit = limits.defaultListLimit
        if let raw = q["limit"] {
            guard let n = Int(raw), (1...limits.maxListLimit).contains(n) else {
                throw KVHTTPError.badRequest("badLimit", "limit must be a number from 1 to \(limits.maxListLimit), got '\(raw)'")
            }
            limit = n
        }
        guard prefix.count <= limits.maxKeyBytes, (after?.count ?? 0) <= limits.maxKeyBytes else {
            throw KVHTTPError.badRequest("keyTooLong", "prefix and after are keys: at most \(limits.maxKeyBytes) bytes")
        }
        let pageSize = limit
        let page = try await read(request) { try $0.list(prefix: prefix, after: after, limit: pageSize) }
        let entries = page.entries.map { e -> ListAnswer.Entry in
            let v = KVValueJSON(e.value)
            return ListAnswer.Entry(key: String(decoding: e.key, as: UTF8.self), value: v.value, valueBase64: v.valueBase64)
        }
        return jsonResponse(ListAnswer(entries: entries, next: page.hasMore ? entries.last?.key : nil))
    }

    /// The key named by the path: everything after `/kv/`, percent-decoded.
    func key(of request: Request) throws(KVHTTPError) -> [UInt8] {
        let path = request.uri.path
        let raw = path.hasPrefix("/kv/") ? String(path.dropFirst(4)) : ""
        guard let key = raw.removingPercentEncoding else {
            throw KVHTTPError.badRequest("badKey", "the key is not valid percent-encoded UTF-8")
        }
        guard !key.isEmpty else { throw KVHTTPError.badRequest("emptyKey", "the key is empty: use /kv/{key}") }
        guard key.utf8.count <= limits.maxKeyBytes else {
            throw KVHTTPError.badRequest("keyTooLong", "the key has \(key.utf8.count) bytes, at most \(limits.maxKeyBytes) are allowed")
        }
        return Array(key.utf8)
    }

    // MARK: Through the node

    /// Proposes `command`; a follower answers with a redirect to the leader.
    func propose(_ command: KVCommand, _ request: Request) async throws -> KVResult {
        if let full = node.waitingForSpace { throw Self.refusal(full) }
        do {
            return try await raft.propose(command.encoded)
        } catch let e as RaftError where e.code == .notLeader {
            throw redirect(request, to: e.leaderHint)
        } catch let e as RaftError {
            throw refined(e)
        }
    }

    /// 503 `diskFull`: the node's replica stopped on a full disk before this request, which it
    /// refuses without doing anything.
    static func refusal(_ full: RaftError) -> KVHTTPError {
        .unavailable("diskFull", "this node's disk is full (\(full.message)); nothing was done; the node starts again by itself once there is space")
    }

    /// `stopped` says more when the replica stopped on a full disk: the node waits for space
    /// and starts again by itself (``KVNode/waitingForSpace``).
    func refined(_ error: RaftError) -> RaftError {
        error.code == .stopped ? node.waitingForSpace ?? error : error
    }

    /// Runs `query` at the consistency the request asks for (`?consistency=`, linearizable by
    /// default). A linearizable or lease read on a follower that knows the leader is redirected
    /// there; a stale read is served here.
    func read<R: Sendable>(_ request: Request, _ query: @escaping @Sendable (SQLiteStateMachine) throws -> R) async throws -> R {
        let consistency: ReadConsistency
        switch request.uri.queryParameters["consistency"] {
        case nil, "linearizable": consistency = .linearizable
        case "lease": consistency = .lease
        case "stale": consistency = .stale
        case let other?:
            throw KVHTTPError.badRequest("badConsistency", "consistency must be linearizable, lease or stale, got '\(other)'")
        }
        if let full = node.waitingForSpace { throw Self.refusal(full) }
        if consistency != .stale {
            let status: RaftStatus
            do { status = try await raft.status().raft } catch let e as RaftError { throw refined(e) }
            if status.role != .leader && !status.leader.isNone { throw redirect(request, to: status.leader) }
        }
        do {
            return try await raft.read(consistency, query)
        } catch let e as RaftError where e.code == .notLeader {
            throw redirect(request, to: e.leaderHint)
        } catch let e as RaftError {
            throw refined(e)
        }
    }

    /// A 307 to `leader`'s HTTP address with the same path and query, or 503 when the leader
    /// or its address is unknown.
    func redirect(_ request: Request, to leader: NodeID?) -> KVHTTPError {
        guard let leader, !leader.isNone, leader != node.id, let address = node.directory.member(leader)?.httpAddress else {
            return .unavailable("noLeader", "this node is not the leader and knows no leader to redirect to (an election is under way, or there is no quorum); retry shortly")
        }
        var e = KVHTTPError(.temporaryRedirect, "notLeader", "node \(node.id) is a follower; node \(leader) leads")
        e.headers[.location] = "http://\(address)\(request.uri.string)"
        e.leader = leader
        return e
    }
}
