import Foundation
import HTTPTypes
import Hummingbird
import Metrics
import Raft

extension KVHTTPAPI {
    /// `GET /cluster`: what this node knows of the cluster. The members are those of the Raft
    /// membership this node uses (the latest in its log), each with its role and addresses.
    struct ClusterAnswer: Encodable {
        struct Member: Encodable {
            var id: UInt64
            /// `voter`, `learner`, or `leavingVoter` (a voter of the old configuration of a
            /// joint change, on its way out).
            var role: String
            var raft: String?
            var http: String?
            /// On a leader: the highest index known replicated on the member.
            var match: UInt64?
            /// On a leader: how it sends to the member (probe, replicate, snapshot).
            var replication: String?
        }
        struct Database: Encodable {
            var appliedBatches: Int
            var syncs: Int
            var snapshotsSaved: Int
            var snapshotsRestored: Int
        }
        var id: UInt64
        var clusterID: String
        var role: String
        var term: UInt64
        /// The leader this node knows of; `nil` while there is none.
        var leader: UInt64?
        var commit: UInt64
        var applied: UInt64
        var snapshot: UInt64
        var lastIndex: UInt64
        var pendingProposals: Int
        /// The index of the entry that set the membership, and whether it is committed.
        var membershipIndex: UInt64
        var membershipCommitted: Bool
        /// Whether a joint change is under way (the old voters are the `leavingVoter`s and the
        /// voters that stay).
        var joint: Bool
        /// Empty on a node that waits to be added (started with `--join`).
        var members: [Member]
        var database: Database
    }

    func cluster() async throws -> Response {
        let status = try await raft.status()
        let progress = Dictionary(uniqueKeysWithValues: status.raft.members.map { ($0.id, $0) })
        let membership = status.raft.membership
        let members = memberViews(membership, progress: progress)
        let db = node.statistics.current
        // The status page of any member reads every member's /cluster.
        return jsonResponse(headers: [.accessControlAllowOrigin: "*"], ClusterAnswer(
            id: node.id.rawValue, clusterID: node.configuration.clusterID, role: "\(status.raft.role)", term: status.raft.term.rawValue,
            leader: status.raft.leader.isNone ? nil : status.raft.leader.rawValue, commit: status.raft.commit.rawValue,
            applied: status.applied.rawValue, snapshot: status.snapshotIndex.rawValue, lastIndex: status.raft.lastIndex.rawValue,
            pendingProposals: status.pendingProposals, membershipIndex: status.raft.membershipIndex.rawValue,
            membershipCommitted: status.raft.commit >= status.raft.membershipIndex, joint: membership.isJoint, members: members,
            database: .init(appliedBatches: db.appliedBatches, syncs: db.syncs, snapshotsSaved: db.snapshotsSaved, snapshotsRestored: db.snapshotsRestored)))
    }

    /// The members of `membership` as the JSON answers show them, with the leader's
    /// `progress` where it is known.
    func memberViews(_ membership: ConfState, progress: [NodeID: RaftStatus.Member] = [:]) -> [ClusterAnswer.Member] {
        membership.members.compactMap { id -> ClusterAnswer.Member? in
            guard let role = membership.role(of: id) else { return nil }
            let addresses = node.directory.member(id, in: membership)
            return ClusterAnswer.Member(
                id: id.rawValue, role: Self.name(of: role),
                raft: addresses.map { "\($0.raftAddress)" }, http: addresses?.httpAddress.map { "\($0)" },
                match: progress[id]?.match.rawValue, replication: progress[id].map { "\($0.state)" })
        }
    }

    /// A member role as the JSON answers spell it.
    static func name(of role: MemberRole) -> String {
        switch role {
        case .voter: "voter"
        case .learner: "learner"
        case .leavingVoter: "leavingVoter"
        }
    }

    /// `GET /health`: 200 with the role while the node runs; 503 once it stopped, or
    /// (`diskFull`) while it waits for disk space.
    func health() async throws -> Response {
        struct Health: Encodable {
            var status: String
            var role: String
        }
        do {
            let status = try await raft.status()
            return jsonResponse(Health(status: "ok", role: "\(status.raft.role)"))
        } catch let e as RaftError where e.code == .stopped {
            if let full = node.waitingForSpace { throw Self.refusal(full) }
            throw KVHTTPError.unavailable("stopped", "the node is stopped")
        }
    }

    /// `POST /admin/snapshot`: takes a snapshot of everything applied now and compacts the log
    /// behind it (as the node does every ``Raft/RaftNodeConfiguration/snapshotEvery`` entries).
    /// 200 with `{"index": N}`, or `{"index": null}` when nothing was applied since the last one.
    func snapshot() async throws -> Response {
        struct Snapshot: Encodable {
            var index: UInt64?
        }
        let index = try await raft.snapshot()
        return jsonResponse(Snapshot(index: index?.rawValue))
    }

    /// `GET /metrics`: the node's registry in Prometheus's text format.
    func metrics() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: node.registry.emitToBuffer())))
    }

    /// `GET /`: the status page.
    func statusPage() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
    }
}

/// Counts requests by method and status (`kvstore_http_requests_total`) and times them
/// (`kvstore_http_request_duration_seconds`).
struct KVMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let factory: any MetricsFactory

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let dimensions = [("method", request.method.rawValue), ("status", "\(response.status.code)")]
        Counter(label: "kvstore_http_requests_total", dimensions: dimensions, factory: factory).increment()
        Timer(label: "kvstore_http_request_duration_seconds", dimensions: dimensions, factory: factory)
            .record(duration: start.duration(to: .now))
        return response
    }
}
