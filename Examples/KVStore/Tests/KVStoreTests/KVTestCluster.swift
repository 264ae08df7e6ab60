import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Raft
import RaftTransportTCP

@testable import KVStore

/// Three ``KVNode``s in this process: TCP between them and HTTP in front, all on 127.0.0.1
/// with ports the system chooses, data under one temporary directory, 20 ms ticks.
///
/// `@unchecked Sendable`: a test drives its cluster from one task at a time; the tasks it
/// starts only run the node they were given.
final class KVTestCluster: @unchecked Sendable {
    /// The nodes started, the founders first.
    var ids: [NodeID] = [1, 2, 3]
    /// Nodes started with ``KVNodeConfiguration/join``: the others learn their addresses from
    /// the membership only, never from their address book.
    var joiners: Set<NodeID> = []
    let directory: TemporaryDirectory
    var nodes: [NodeID: KVNode] = [:]
    var runs: [NodeID: Task<Void, any Error>] = [:]
    var members: [NodeID: KVMember] = [:]

    init() async throws {
        directory = try TemporaryDirectory("kvstore-cluster")
        for id in ids { members[id] = KVMember(id: id, raftAddress: PeerAddress(host: "127.0.0.1", port: 0)) }
        for id in ids { try await start(id) }
    }

    /// Starts node `id` on its data directory, on new ports, and tells every running node
    /// where it is now (a joiner only tells itself).
    func start(_ id: NodeID) async throws {
        var c = KVNodeConfiguration(
            id: id, members: book(for: id), dataDirectory: "\(directory.path)/node\(id)",
            httpAddress: PeerAddress(host: "127.0.0.1", port: 0))
        c.join = joiners.contains(id)
        c.raftListenAddress = PeerAddress(host: "127.0.0.1", port: 0)
        c.node.tickInterval = .milliseconds(20)
        // Elections after 0.5–1 s without a heartbeat: a loaded machine (several clusters and
        // `kvstore` processes of parallel suites on two cores) stalls a node for a few hundred
        // milliseconds at times, which must not cost the leader its term mid-test.
        c.node.raft.electionTicks = 25
        // A membership step that cannot finish answers 503 within 5 s, before the client's 10 s.
        c.node.membershipTimeoutTicks = 250
        c.node.proposalTimeoutTicks = 50
        c.node.readTimeoutTicks = 30
        c.clusterID = "kvstore-tests"
        let node = try await KVNode(configuration: c, logger: Logger(label: "kvstore.test", factory: { _ in SwiftLogNoOpLogHandler() }))
        nodes[id] = node
        runs[id] = Task { try await node.run() }
        let http = try await node.httpPort()
        members[id] = KVMember(id: id, raftAddress: PeerAddress(host: "127.0.0.1", port: node.raftPort), httpAddress: PeerAddress(host: "127.0.0.1", port: http))
        for (nid, n) in nodes { n.directory.setAddressBook(book(for: nid)) }
    }

    /// Node `id`'s address book: the founders, and itself.
    func book(for id: NodeID) -> [KVMember] {
        ids.filter { !joiners.contains($0) || $0 == id }.map { members[$0]! }
    }

    /// Starts a new node `id` that waits to be added to the cluster.
    func startJoining(_ id: NodeID) async throws {
        ids.append(id)
        joiners.insert(id)
        members[id] = KVMember(id: id, raftAddress: PeerAddress(host: "127.0.0.1", port: 0))
        try await start(id)
    }

    /// Stops node `id` the way its process would on SIGTERM.
    func stop(_ id: NodeID) async throws {
        guard let node = nodes[id] else { return }
        await node.shutdown()
        _ = try await runs[id]?.value
        nodes[id] = nil
        runs[id] = nil
    }

    func stopAll() async {
        for id in ids { try? await stop(id) }
        directory.remove()
    }

    /// The one leader among the running nodes, waiting for it (bounded).
    func leader(within limit: Duration = .seconds(15)) async throws -> NodeID {
        var found: NodeID?
        try await eventually(limit, "a single leader") {
            var leaders: [NodeID] = []
            for (id, node) in nodes {
                if let s = try? await node.raft.status(), s.raft.role == .leader { leaders.append(id) }
            }
            found = leaders.count == 1 ? leaders[0] : nil
            return found != nil
        }
        return found!
    }

    struct Answer {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: String
        /// The JSON error code, if the body is a KVStore error.
        var errorCode: String? {
            guard let data = body.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let error = json["error"] as? [String: Any]
            else { return nil }
            return error["code"] as? String
        }
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]) ?? [:]
        }
    }

    /// Sends one request to node `id`'s HTTP API; with `follow`, follows up to three
    /// redirects the way `curl -L` does (same method and body).
    func http(_ id: NodeID, _ method: HTTPRequest.Method, _ path: String, body: String? = nil, follow: Bool = true) async throws -> Answer {
        guard let port = members[id]?.httpAddress?.port else { throw RaftError(.invalidArgument, "node \(id) has no HTTP port") }
        return try await http(port: port, method, path, body: body, follow: follow ? 3 : 0)
    }

    func http(port: Int, _ method: HTTPRequest.Method, _ path: String, body: String?, follow: Int) async throws -> Answer {
        let answer = try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(10))) { client in
            let response = try await client.execute(TestClient.Request(path, method: method, body: body.map { ByteBuffer(string: $0) }))
            return Answer(status: response.status, headers: response.headers, body: response.body.map { String(buffer: $0) } ?? "")
        }
        guard follow > 0, answer.status == .temporaryRedirect, let location = answer.headers[.location],
            let url = URL(string: location), let next = url.port
        else { return answer }
        var target = url.path
        if let query = url.query { target += "?" + query }
        return try await http(port: next, method, target, body: body, follow: follow - 1)
    }

    /// A PUT on any running node, retried while the cluster answers 503 (an election).
    func putEventually(_ key: String, _ value: String, within limit: Duration = .seconds(15)) async throws {
        try await eventually(limit, "PUT \(key) succeeding") {
            guard let id = nodes.keys.sorted().first else { return false }
            let a = try await http(id, .put, "/kv/\(key)", body: value)
            return a.status == .noContent
        }
    }
}
