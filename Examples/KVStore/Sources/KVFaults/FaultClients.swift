import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import RaftTestKit
import Synchronization

/// The key-value model the run's history is checked against.
typealias KVModel = KeyValueModel<String, String>

/// The clients of a fault run: each sends one request at a time (get, put, delete or
/// compare-and-swap on a few keys) to a random member, follows redirects to the leader, and
/// records every call's invocation and answer in a ``RaftTestKit/HistoryRecorder``.
///
/// How an answer enters the history:
/// - an answer that says what happened (204, 200, 404, 412) completes the call;
/// - a refusal that cannot have acted (a redirect, 503 `noLeader`, `overloaded`,
///   `leadershipTransferInProgress`, `diskFull`, a connection never made) discards it;
/// - anything else on a write (a timeout, a closed connection, 503 `noQuorum`,
///   `proposalDropped`, `stopped`, `diskFullDuringWrite`, a 500) leaves it unknown: it may or
///   may not have happened;
/// - a read that got no value is discarded (it changed nothing).
final class FaultClients: Sendable {
    struct Counts: Sendable {
        var completed = 0
        var refused = 0
        var unknown = 0
        var redirects = 0
        var leaseReads = 0
        /// 503 `diskFull` answers (a node whose disk is full).
        var diskFull = 0
    }

    let http: HTTPClient
    let admin: HTTPClient
    let network: FaultNetwork
    let recorder = HistoryRecorder<KVModel.Input, KVModel.Output>()
    let keys: [String]
    let timeout: TimeAmount
    private let state = Mutex<(counts: Counts, findings: [String])>((Counts(), []))

    /// Gets go out as stale reads (``FaultRunOptions/unsafeStaleReads``).
    let staleReads: Bool

    init(network: FaultNetwork, keys: Int, timeoutSeconds: Int, staleReads: Bool = false) {
        self.staleReads = staleReads
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(1), read: .seconds(Int64(timeoutSeconds) + 1))
        // A connection that cannot be made fails the request at once (it was not sent), instead
        // of waiting out the request's timeout in the pool's retries.
        configuration.connectionPool.retryConnectionEstablishment = false
        http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        // The harness's own calls (status, membership, snapshots) have a pool of their own, so
        // they never queue behind the clients' requests.
        var adminConfiguration = HTTPClient.Configuration()
        adminConfiguration.redirectConfiguration = .disallow
        adminConfiguration.timeout = .init(connect: .seconds(1), read: .seconds(15))
        admin = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: adminConfiguration)
        self.network = network
        self.keys = (0..<keys).map { "k\($0)" }
        timeout = .seconds(Int64(timeoutSeconds))
    }

    var counts: Counts { state.withLock { $0.counts } }
    var findings: [String] { state.withLock { $0.findings } }

    func shutdown() async {
        try? await http.shutdown()
        try? await admin.shutdown()
    }

    /// Runs client `client` until `deadline`, sending to the nodes `members` returns.
    func run(client: Int, until deadline: ContinuousClock.Instant, seed: UInt64, members: @Sendable () async -> [Int]) async {
        var rng = SplitMix(seed: seed)
        var written = 0
        var lastSeen: [String: String] = [:]
        var preferred: Int?
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            let roll = rng.next() % 100
            let input: KVModel.Input
            var lease = false
            switch roll {
            case 0..<40:
                input = .get(key: key)
                lease = rng.next() % 10 < 3
            case 40..<65:
                written += 1
                input = .put(key: key, value: "c\(client)-\(written)")
            case 65..<80:
                input = .delete(key: key)
            default:
                written += 1
                input = .compareAndSwap(key: key, expected: lastSeen[key] ?? "c\(client)-\(max(1, written - 1))", new: "c\(client)-\(written)")
            }
            let nodes = await members()
            guard !nodes.isEmpty else { break }
            // Mostly to the node that answered last (the leader, after a redirect), sometimes to
            // any member, so that followers and deposed leaders get requests too.
            let node = preferred.flatMap { nodes.contains($0) && rng.next() % 4 != 0 ? $0 : nil } ?? nodes[Int(rng.next() % UInt64(nodes.count))]
            let (seen, answered) = await perform(client: client, input, lease: lease, at: node)
            if let seen, let value = seen { lastSeen[input.key] = value }
            preferred = answered
            try? await Task.sleep(for: .milliseconds(Int(rng.next() % 8)))
        }
    }

    /// Sends `input` to node `node`, following up to two redirects. Returns the value the key
    /// was seen to hold (a read's answer, a write's own value; `.some(nil)` for absent; `nil`
    /// when nothing was learned) and the node that answered, if one did.
    func perform(client: Int, _ input: KVModel.Input, lease: Bool, at node: Int) async -> (seen: String??, answered: Int?) {
        var url = network.url(node) + "/kv/" + input.key + query(input, lease: lease)
        var target = node
        for _ in 0..<3 {
            let call = recorder.invoke(client: client, input)
            let attempt = await send(input, url)
            switch attempt {
            case .answer(307, let body, let location?):
                discard(call) { $0.redirects += 1 }
                url = location
                target = Self.leader(body) ?? target
                continue
            case .answer(let status, let body, _):
                return (settle(call, input, status: status, body: body, lease: lease, node: target), target)
            case .notSent:
                discard(call) { $0.refused += 1 }
            case .unknown:
                if case .get = input { discard(call) { $0.refused += 1 } } else { count { $0.unknown += 1 } }
            }
            return (nil, nil)
        }
        return (nil, nil)
    }

    /// Records what answer `status` (with `body`) says about `call`.
    func settle(_ call: HistoryRecorder<KVModel.Input, KVModel.Output>.Call, _ input: KVModel.Input, status: Int, body: String, lease: Bool, node: Int) -> String?? {
        let output: KVModel.Output?
        var seen: String??
        switch (input, status) {
        case (.get, 200):
            output = .value(body)
            seen = .some(body)
        case (.get, 404):
            output = .value(nil)
            seen = .some(nil)
        case (.put(_, let value), 204):
            output = .ok
            seen = .some(value)
        case (.delete, 204), (.delete, 404):
            output = .ok
            seen = .some(nil)
        case (.compareAndSwap(_, _, let new), 204):
            output = .swapped(true)
            seen = .some(new)
        case (.compareAndSwap, 412):
            output = .swapped(false)
        default:
            output = nil
        }
        if let output {
            try? recorder.complete(call, output)
            count {
                $0.completed += 1
                if lease { $0.leaseReads += 1 }
            }
            return seen
        }
        let code = Self.errorCode(body)
        if code == "diskFull" || code == "diskFullDuringWrite" { count { $0.diskFull += 1 } }
        if case .get = input, status == 503 || status == 504 {
            discard(call) { $0.refused += 1 }
        } else if status == 503, ["noLeader", "overloaded", "leadershipTransferInProgress", "diskFull"].contains(code) {
            discard(call) { $0.refused += 1 }
        } else if status >= 500 {
            count { $0.unknown += 1 }
        } else {
            // A 4xx the harness never provokes, or a status the API does not give: a bug.
            state.withLock { $0.findings.append("node \(node) answered \(KVModel().describe(input: input)) with \(status): \(body.prefix(300))") }
            discard(call) { $0.refused += 1 }
        }
        return nil
    }

    enum Attempt {
        case answer(status: Int, body: String, location: String?)
        /// No connection was made: the request never left.
        case notSent
        /// The request may have reached the node.
        case unknown(String)
    }

    func send(_ input: KVModel.Input, _ url: String) async -> Attempt {
        var request = HTTPClientRequest(url: url)
        switch input {
        case .get: request.method = .GET
        case .put(_, let value), .compareAndSwap(_, _, let value):
            request.method = .PUT
            request.body = .bytes(ByteBuffer(string: value))
        case .delete: request.method = .DELETE
        }
        do {
            let response = try await http.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            return .answer(status: Int(response.status.code), body: String(buffer: body), location: response.headers.first(name: "location"))
        } catch {
            return Self.neverSent(error) ? .notSent : .unknown("\(error)")
        }
    }

    /// Whether `error` says the connection was never made.
    static func neverSent(_ error: any Error) -> Bool {
        if error is NIOConnectionError { return true }
        if let e = error as? HTTPClientError, e == .connectTimeout { return true }
        if let e = error as? IOError, e.errnoCode == ECONNREFUSED { return true }
        if let e = error as? ChannelError, case .connectTimeout = e { return true }
        return false
    }

    func query(_ input: KVModel.Input, lease: Bool) -> String {
        switch input {
        case .get: staleReads ? "?consistency=stale" : lease ? "?consistency=lease" : ""
        case .compareAndSwap(_, let expected, _): "?prev=" + (expected ?? "")
        default: ""
        }
    }

    /// The leader a redirect names.
    static func leader(_ body: String) -> Int? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let error = json["error"] as? [String: Any]
        else { return nil }
        return error["leader"] as? Int
    }

    static func errorCode(_ body: String) -> String? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let error = json["error"] as? [String: Any]
        else { return nil }
        return error["code"] as? String
    }

    private func discard(_ call: HistoryRecorder<KVModel.Input, KVModel.Output>.Call, _ update: (inout Counts) -> Void) {
        try? recorder.discard(call)
        count(update)
    }

    private func count(_ update: (inout Counts) -> Void) {
        state.withLock { update(&$0.counts) }
    }
}

/// A small seeded generator (SplitMix64), so a run's choices repeat with its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
