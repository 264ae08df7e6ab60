import ArgumentParser
import KVStore
import Logging
import Raft
import RaftTransportTCP

/// `kvstore serve`: runs one node until SIGINT or SIGTERM.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one node of a cluster.",
        discussion: """
            Every member of the cluster is named with --peers as ID=RAFT_HOST:PORT/HTTP_HOST:PORT
            (this node included), comma-separated or repeated. A new --data-dir starts a cluster of
            those members; an existing one resumes where it stopped.

            Example (node 1 of three on one machine):
              kvstore serve --id 1 --data-dir data/node1 --http 127.0.0.1:8001 \\
                --peers 1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003

            A node that joins a running cluster starts with --join (its new --data-dir starts with no
            membership) and --peers naming the current members and itself; it waits until it is added:
              kvstore serve --id 4 --join --data-dir data/node4 \\
                --peers 1=127.0.0.1:7001/127.0.0.1:8001,2=127.0.0.1:7002/127.0.0.1:8002,3=127.0.0.1:7003/127.0.0.1:8003,4=127.0.0.1:7004/127.0.0.1:8004
              curl -L -X POST -d '{"id": 4, "raft": "127.0.0.1:7004", "http": "127.0.0.1:8004"}' http://127.0.0.1:8001/cluster/members

            With --tls-cert, --tls-key and --tls-ca (PEM files) the peer traffic runs mutual TLS 1.3:
            every member presents a certificate signed by the CA and accepts only peers that do. The
            HTTP API stays plain HTTP.
            """)

    @Option(help: "This node's id (one of the --peers).")
    var id: UInt64

    @Option(parsing: .singleValue, help: "Members as ID=RAFT_HOST:PORT/HTTP_HOST:PORT, comma-separated or repeated.")
    var peers: [String]

    @Option(help: "Where the node keeps its log and database.")
    var dataDir: String

    @Option(help: "Where the HTTP API listens (HOST:PORT); defaults to this node's HTTP address in --peers.")
    var http: String?

    @Option(help: "A name for the cluster; peers with another one are refused.")
    var clusterID = "kvstore"

    @Flag(help: "Join a running cluster: a new --data-dir starts with no membership and waits to be added.")
    var join = false

    @Option(help: "This node's certificate chain (PEM) for mutual TLS between peers.")
    var tlsCert: String?

    @Option(help: "The private key of --tls-cert (PEM).")
    var tlsKey: String?

    @Option(help: "The certificate authority peers' certificates must chain to (PEM).")
    var tlsCa: String?

    @Option(help: "Milliseconds per Raft tick; write, read and membership timeouts keep their length in time.")
    var tickMs = 100

    @Option(help: "Ticks without a leader's message before a follower campaigns (elections after this to twice this many ticks).")
    var electionTicks = 10

    @Option(help: "Take a snapshot every this many applied entries.")
    var snapshotEvery: UInt64 = 10_000

    @Option(help: "Entries kept in the log behind a snapshot, so followers a little behind need no snapshot.")
    var compactionTrail: UInt64 = 1_000

    @OptionGroup var log: LogOptions

    func configuration() throws -> KVNodeConfiguration {
        let members = try peers.flatMap { $0.split(separator: ",") }.map { try KVMember(parsing: $0) }
        let me = NodeID(rawValue: id)
        guard let own = members.first(where: { $0.id == me }) else {
            throw ValidationError("--id \(id) is not among --peers (\(members.map(\.id)))")
        }
        guard let httpAddress = try http.map({ try PeerAddress(parsing: $0) }) ?? own.httpAddress else {
            throw ValidationError("give --http, or this node's HTTP address in --peers (ID=RAFT/HTTP)")
        }
        var c = KVNodeConfiguration(id: me, members: members, dataDirectory: dataDir, httpAddress: httpAddress)
        c.clusterID = clusterID
        c.join = join
        do { try c.setTickInterval(milliseconds: tickMs) } catch { throw ValidationError("--tick-ms: \(error.message)") }
        c.node.raft.electionTicks = electionTicks
        c.node.snapshotEvery = snapshotEvery
        c.node.compactionTrail = compactionTrail
        switch (tlsCert, tlsKey, tlsCa) {
        case (nil, nil, nil): break
        case let (cert?, key?, ca?):
            c.tls = TCPTransportTLS(certificateChain: .file(cert), privateKey: .file(key), trustRoots: .file(ca))
        default: throw ValidationError("give all three of --tls-cert, --tls-key and --tls-ca, or none")
        }
        return c
    }

    func run() async throws {
        log.bootstrap()
        let c = try configuration()
        var logger = Logger(label: "kvstore")
        logger[metadataKey: "node"] = "\(id)"
        do {
            let node = try await openWaitingForSpace(c, logger: logger)
            logger.info("node \(id) starting", metadata: ["data": "\(dataDir)", "raft": "\(node.raftPort)", "join": "\(join)", "tls": "\(c.tls != nil)"])
            try await node.run(handlingSignals: true)
        } catch let e as RaftError {
            // A configuration, file or port the node cannot use: say what, exit with status 1.
            logger.critical("node \(id) cannot run: \(e.message)", metadata: ["code": "\(e.code)"])
            throw ExitCode.failure
        }
        logger.info("node \(id) stopped")
    }

    /// Opens the node; on a full disk (``Raft/RaftError/Code/noSpace``) it says so and tries
    /// again every second until there is room (SIGTERM or SIGINT meanwhile ends the process).
    func openWaitingForSpace(_ c: KVNodeConfiguration, logger: Logger) async throws -> KVNode {
        var warned = false
        while true {
            do {
                return try await KVNode(configuration: c, logger: logger)
            } catch let e as RaftError where e.code == .noSpace {
                if !warned { logger.error("the disk is full: the node starts once there is space", metadata: ["error": "\(e.message)"]) }
                warned = true
                try await Task.sleep(for: .seconds(1))
            }
        }
    }
}
