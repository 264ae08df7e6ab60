import Foundation
import HTTPTypes
import Hummingbird
import Raft

/// An HTTP answer other than success, with a JSON body:
///
/// ```json
/// {"error": {"code": "keyTooLong", "message": "the key has 2000 bytes, at most 1024 are allowed"}}
/// ```
///
/// A redirect to the leader (307) carries `leader` and `location` too; a compare-and-swap that
/// did not match (412) carries the key's `current` value.
public struct KVHTTPError: Error, Sendable {
    /// The status.
    public var status: HTTPResponse.Status
    /// A stable name for what went wrong, for programs (`emptyKey`, `notLeader`, `noQuorum`, …).
    public var code: String
    /// What happened and what to do, for people.
    public var message: String
    /// Extra headers (`Location`, `Retry-After`).
    public var headers: HTTPFields = [:]
    /// For a redirect: the leader.
    public var leader: NodeID?
    /// For a compare-and-swap that did not match: the current value (`nil`: the key is absent).
    public var current: [UInt8]??

    /// Creates an error answer.
    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// 400 with `code`.
    static func badRequest(_ code: String, _ message: String) -> KVHTTPError { KVHTTPError(.badRequest, code, message) }

    /// 503 with `Retry-After: 1`.
    static func unavailable(_ code: String, _ message: String) -> KVHTTPError {
        var e = KVHTTPError(.serviceUnavailable, code, message)
        e.headers[.retryAfter] = "1"
        return e
    }

    /// 504 for a membership step (a change, a learner's catch-up, a leadership transfer) that
    /// did not complete within ``Raft/RaftNodeConfiguration/membershipTimeoutTicks``: unlike a
    /// write without a quorum, it usually waits for a member that is slow or unreachable.
    static func membershipTimeout(_ error: RaftError) -> KVHTTPError {
        KVHTTPError(
            .gatewayTimeout, "membershipTimeout",
            "the membership step timed out (\(error.message)); it may still complete: check GET /cluster before retrying")
    }

    /// The answer for a ``Raft/RaftError`` from the node (a redirect is decided before, by the
    /// caller that knows the request).
    init(_ error: RaftError) {
        switch error.code {
        case .notLeader:
            self = .unavailable("noLeader", "this node is not the leader and knows no leader to redirect to (an election is under way, or there is no quorum); retry shortly")
        case .timeout:
            self = .unavailable("noQuorum", "no quorum answered in time (\(error.message)); the change may still take effect")
        case .proposalDropped:
            self = .unavailable("proposalDropped", "a leader change lost the write or left its outcome unknown: \(error.message)")
        case .uncommittedLimitExceeded:
            self = .unavailable("overloaded", "the leader holds too many uncommitted writes; retry shortly")
        case .stopped:
            self = .unavailable("stopped", "this node is stopping or stopped")
        case .noSpace:
            self = .unavailable("diskFullDuringWrite", "this node's disk filled up while it handled the request (\(error.message)); a write may or may not have taken effect; the node starts again by itself once there is space")
        case .invalidArgument:
            self = .badRequest("invalidArgument", error.message)
        case .membershipChangeInProgress:
            self = KVHTTPError(.conflict, "membershipChangeInProgress", "\(error.message); retry once it is done")
        case .leadershipTransferInProgress:
            self = .unavailable("leadershipTransferInProgress", "leadership is being handed over (\(error.message)); retry shortly")
        case .unknownPeer:
            self = KVHTTPError(.notFound, "unknownMember", error.message)
        default:
            self = KVHTTPError(.internalServerError, "internal", "\(error)")
        }
    }

    /// The answer for an error Hummingbird raised (an unknown route, a body too large).
    init(_ error: HTTPError) {
        let code = switch error.status {
        case .notFound: "unknownRoute"
        case .methodNotAllowed: "methodNotAllowed"
        case .contentTooLarge: "valueTooLarge"
        default: "http\(error.status.code)"
        }
        self.init(error.status, code, error.body ?? error.status.reasonPhrase)
        headers = error.headers
    }

    struct Body: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
            var leader: UInt64?
            var location: String?
        }
        var error: Detail
        var current: KVValueJSON?
        var exists: Bool?
    }

    /// The response: status, headers, JSON body.
    public func response() -> Response {
        var body = Body(error: .init(code: code, message: message, leader: leader?.rawValue, location: headers[.location]))
        if let current {
            body.exists = current != nil
            body.current = current.map(KVValueJSON.init)
        }
        return jsonResponse(status: status, headers: headers, body)
    }
}

/// A value in JSON: as text when it is valid UTF-8, else as base64.
struct KVValueJSON: Encodable {
    var value: String?
    var valueBase64: String?

    init(_ bytes: [UInt8]) {
        if let text = String(validating: bytes, as: UTF8.self) { value = text } else { valueBase64 = Data(bytes).base64EncodedString() }
    }
}

/// A JSON response (keys sorted, so answers are stable).
func jsonResponse(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], _ value: some Encodable) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = (try? encoder.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"the answer could not be encoded"}}"#.utf8)
    var h = headers
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// Turns every error a route throws into a ``KVHTTPError`` answer with a JSON body, unknown
/// routes included.
struct KVErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as KVHTTPError {
            return e.response()
        } catch let e as HTTPError {
            return KVHTTPError(e).response()
        } catch let e as RaftError {
            return KVHTTPError(e).response()
        } catch {
            return KVHTTPError(.internalServerError, "internal", "\(error)").response()
        }
    }
}
