import Foundation
import KVStore

/// Where the nodes of a fault run listen, and how the run partitions them.
///
/// With ``Mode-swift.enum/namespaces`` (Linux, as root, with `ip` from iproute2) every node runs
/// in a network namespace of its own, `kvf-nN`, joined to the others by a veth pair on one
/// bridge, `kvf-br`, whose address (10.213.0.254) is where the clients and the harness speak
/// from. Node N is 10.213.0.N with the same ports as every other node. A partition between two
/// nodes is a pair of blackhole routes, one in each namespace: packets between them vanish, as
/// on a real network, while both still answer the clients. Without namespaces
/// (``Mode-swift.enum/loopback``) every node listens on 127.0.0.1 with ports of its own and
/// the run has no partitions; the report says so.
public final class FaultNetwork: Sendable {
    /// How the nodes are connected.
    public enum Mode: String, Sendable, CustomStringConvertible {
        /// One network namespace per node, partitions by blackhole routes.
        case namespaces
        /// Every node on 127.0.0.1; no partitions.
        case loopback

        public var description: String { rawValue }
    }

    /// How the nodes are connected.
    public let mode: Mode
    /// Why the namespaces could not be used, in ``Mode-swift.enum/loopback`` mode after trying.
    public let fallbackReason: String?
    let ip: String?
    let basePort: Int
    static let subnet = "10.213.0"

    private init(mode: Mode, fallbackReason: String?, ip: String?, basePort: Int) {
        self.mode = mode
        self.fallbackReason = fallbackReason
        self.ip = ip
        self.basePort = basePort
    }

    /// Sets up a network for nodes `ids`: namespaces when `namespaces` is `true` and the
    /// machine allows them, otherwise loopback. Namespaces and bridge left over by an earlier
    /// run that died are removed first.
    public static func setUp(ids: [Int], namespaces: Bool) async -> FaultNetwork {
        let loopbackBase = 21000 + Int.random(in: 0..<300) * 20
        guard namespaces else { return FaultNetwork(mode: .loopback, fallbackReason: "namespaces not asked for", ip: nil, basePort: loopbackBase) }
        guard geteuid() == 0 else {
            return FaultNetwork(mode: .loopback, fallbackReason: "not root: network namespaces need CAP_NET_ADMIN", ip: nil, basePort: loopbackBase)
        }
        guard let ip = FaultCommand.find("ip") else {
            return FaultNetwork(mode: .loopback, fallbackReason: "`ip` (iproute2) is not installed", ip: nil, basePort: loopbackBase)
        }
        let network = FaultNetwork(mode: .namespaces, fallbackReason: nil, ip: ip, basePort: 7000)
        await network.removeLeftovers()
        do {
            try await network.run("link", "add", "kvf-br", "type", "bridge")
            try await network.run("addr", "add", "\(subnet).254/24", "dev", "kvf-br")
            try await network.run("link", "set", "kvf-br", "up")
            for id in ids { try await network.addNamespace(id) }
            return network
        } catch {
            await network.tearDown()
            return FaultNetwork(mode: .loopback, fallbackReason: "setting up namespaces failed: \(error)", ip: nil, basePort: loopbackBase)
        }
    }

    /// Adds node `id`'s namespace, its veth pair and its address (namespaces mode only).
    func addNamespace(_ id: Int) async throws {
        guard mode == .namespaces else { return }
        let ns = "kvf-n\(id)"
        try await FaultCommand.run(ip!, ["netns", "add", ns])
        try await run("link", "add", "kvf-v\(id)", "type", "veth", "peer", "name", "kvf-p\(id)", "netns", ns)
        try await run("link", "set", "kvf-v\(id)", "master", "kvf-br", "up")
        try await FaultCommand.run(ip!, ["-n", ns, "addr", "add", "\(Self.subnet).\(id)/24", "dev", "kvf-p\(id)"])
        try await FaultCommand.run(ip!, ["-n", ns, "link", "set", "kvf-p\(id)", "up"])
        try await FaultCommand.run(ip!, ["-n", ns, "link", "set", "lo", "up"])
    }

    /// Node `id`'s host: its namespace's address, or 127.0.0.1.
    public func host(_ id: Int) -> String { mode == .namespaces ? "\(Self.subnet).\(id)" : "127.0.0.1" }
    /// Node `id`'s Raft (TCP transport) port.
    public func raftPort(_ id: Int) -> Int { mode == .namespaces ? basePort : basePort + id }
    /// Node `id`'s HTTP port.
    public func httpPort(_ id: Int) -> Int { mode == .namespaces ? basePort + 1000 : basePort + 10 + id }
    /// Node `id` as `kvstore serve --peers` takes it.
    public func member(_ id: Int) -> String { "\(id)=\(host(id)):\(raftPort(id))/\(host(id)):\(httpPort(id))" }
    /// The base URL of node `id`'s HTTP API.
    public func url(_ id: Int) -> String { "http://\(host(id)):\(httpPort(id))" }

    /// How to start a program as node `id`: the program itself, or `ip netns exec` of it in
    /// the node's namespace (which execs it: the pid is the program's).
    func launch(_ id: Int, _ program: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
        guard mode == .namespaces, let ip else { return (program, arguments) }
        return (ip, ["netns", "exec", "kvf-n\(id)", program] + arguments)
    }

    /// Drops every packet between `a` and `b`, both ways.
    func cut(_ a: Int, _ b: Int) async throws {
        guard mode == .namespaces else { return }
        try await FaultCommand.run(ip!, ["-n", "kvf-n\(a)", "route", "replace", "blackhole", "\(host(b))/32"])
        try await FaultCommand.run(ip!, ["-n", "kvf-n\(b)", "route", "replace", "blackhole", "\(host(a))/32"])
    }

    /// Lets packets between `a` and `b` through again.
    func heal(_ a: Int, _ b: Int) async {
        guard mode == .namespaces else { return }
        _ = try? await FaultCommand.run(ip!, ["-n", "kvf-n\(a)", "route", "del", "blackhole", "\(host(b))/32"])
        _ = try? await FaultCommand.run(ip!, ["-n", "kvf-n\(b)", "route", "del", "blackhole", "\(host(a))/32"])
    }

    /// Removes the namespaces and the bridge.
    public func tearDown() async {
        guard mode == .namespaces else { return }
        await removeLeftovers()
    }

    private func removeLeftovers() async {
        guard let ip else { return }
        // The root ends of the veth pairs first: deleting one end deletes the pair at once,
        // while a deleted namespace takes its devices down asynchronously, and a new pair of the
        // same name would find the old one still there.
        let links = (try? await FaultCommand.run(ip, ["-o", "link", "show"])) ?? ""
        for line in links.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 1 else { continue }
            let name = fields[1].split(separator: "@").first.map { String($0.trimmingCharacters(in: CharacterSet(charactersIn: ":"))) } ?? ""
            if name.hasPrefix("kvf-v") { _ = try? await FaultCommand.run(ip, ["link", "del", name]) }
        }
        let listing = (try? await FaultCommand.run(ip, ["netns", "list"])) ?? ""
        for line in listing.split(separator: "\n") {
            let name = line.split(separator: " ").first.map(String.init) ?? ""
            guard name.hasPrefix("kvf-n") else { continue }
            // Processes of a run that died keep running in its namespaces (deleting one only
            // drops its name): kill them first.
            let pids = (try? await FaultCommand.run(ip, ["netns", "pids", name])) ?? ""
            for pid in pids.split(separator: "\n").compactMap({ Int32($0.trimmingCharacters(in: .whitespaces)) }) { kill(pid, SIGKILL) }
            _ = try? await FaultCommand.run(ip, ["netns", "del", name])
        }
        // Deleting a namespace deletes its end of each veth pair, and with it the other end.
        _ = try? await FaultCommand.run(ip, ["link", "del", "kvf-br"])
    }

    private func run(_ arguments: String...) async throws {
        try await FaultCommand.run(ip!, arguments)
    }
}

/// Runs short system commands (`ip`, `mount`) as child processes, off the caller's thread.
enum FaultCommand {
    /// The first of the usual directories holding `program`.
    static func find(_ program: String) -> String? {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs `executable` with `arguments` and returns what it printed; throws when it fails.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<String, any Error>) in
            DispatchQueue.global().async {
                c.resume(with: Result { try runBlocking(executable, arguments) })
            }
        }
    }

    static func runBlocking(_ executable: String, _ arguments: [String]) throws -> String {
        let output = NSTemporaryDirectory() + "kvf-cmd-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(executable: executable, arguments: arguments, stdout: .file(output), stderr: .file(output))
        let exit = child.waitForExit()
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard exit == .exited(0) else {
            throw FaultRunError("`\(([executable] + arguments).joined(separator: " "))` \(exit): \(printed.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return printed
    }
}

/// A fault run could not be set up or carried out (not a finding about the service).
public struct FaultRunError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    init(_ description: String) { self.description = description }
}
