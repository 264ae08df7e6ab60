import Raft
import RaftTransportTCP

/// One member of a KVStore cluster: its id, where its peers reach it (Raft over TCP) and where
/// clients reach it (HTTP).
public struct KVMember: Sendable, Hashable, CustomStringConvertible {
    /// The member's node id (not 0).
    public var id: NodeID
    /// Where the member's TCP transport listens.
    public var raftAddress: PeerAddress
    /// Where the member's HTTP API listens (`host:port`); `nil` when unknown, then requests on
    /// a follower that would be redirected to it get 503 instead.
    public var httpAddress: PeerAddress?

    /// Creates a member.
    public init(id: NodeID, raftAddress: PeerAddress, httpAddress: PeerAddress? = nil) {
        self.id = id
        self.raftAddress = raftAddress
        self.httpAddress = httpAddress
    }

    /// Parses `ID=RAFT_HOST:PORT` or `ID=RAFT_HOST:PORT/HTTP_HOST:PORT`, as `kvstore serve
    /// --peers` takes it (IPv6 hosts in brackets: `[::1]:7001`).
    ///
    /// - Throws: ``Raft/RaftError/Code/invalidArgument`` saying what is wrong.
    public init(parsing text: some StringProtocol) throws(RaftError) {
        let parts = text.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, let raw = UInt64(parts[0]), raw != 0 else {
            throw RaftError(.invalidArgument, "'\(text)' is not a member: expected ID=HOST:PORT[/HTTP_HOST:PORT] with a non-zero numeric id")
        }
        let addresses = parts[1].split(separator: "/", omittingEmptySubsequences: false)
        guard addresses.count == 1 || addresses.count == 2 else {
            throw RaftError(.invalidArgument, "'\(text)' has more than one '/': expected ID=HOST:PORT[/HTTP_HOST:PORT]")
        }
        self.init(
            id: NodeID(rawValue: raw), raftAddress: try PeerAddress(parsing: addresses[0]),
            httpAddress: addresses.count == 2 ? try PeerAddress(parsing: addresses[1]) : nil)
    }

    public var description: String { "\(id)=\(raftAddress)" + (httpAddress.map { "/\($0)" } ?? "") }
}

/// Limits on what clients may send, checked before anything reaches the log.
public struct KVLimits: Sendable, Hashable {
    /// The longest key, in bytes of UTF-8.
    public var maxKeyBytes = 1024
    /// The largest value, in bytes (it travels in one log entry: keep it well under the log's
    /// message size, 1 MiB by default).
    public var maxValueBytes = 512 << 10
    /// The most entries one listing page returns.
    public var maxListLimit = 1000
    /// Entries per listing page when the request does not say.
    public var defaultListLimit = 100

    /// The defaults.
    public init() {}
}

/// How one KVStore node runs.
public struct KVNodeConfiguration: Sendable {
    /// This node's id; it must be one of ``members``.
    public var id: NodeID
    /// Every member, this one included: the address book. A new data directory starts a
    /// cluster of these voters (unless ``join``). Once running, the node's members are those of
    /// its Raft membership, and a member added at run time brings its addresses with it (see
    /// ``KVClusterDirectory``); the book supplies the addresses of the founding members.
    public var members: [KVMember]
    /// Whether a new data directory joins an existing cluster instead of starting one: the node
    /// starts with no membership and waits until a leader adds it (`POST /cluster/members` on
    /// any member), then receives the log or a snapshot. ``members`` must name this node and
    /// should name the current members, so that it can answer them. Ignored for a data
    /// directory that already holds a log.
    public var join = false
    /// Mutual TLS for the peer traffic (the TCP transport); `nil` for plain TCP. The HTTP API
    /// stays plain HTTP.
    public var tls: TCPTransportTLS?
    /// Where the node keeps its Raft log (`raft/`) and its database (`kv.sqlite`).
    public var dataDirectory: String
    /// Where the HTTP API listens; port 0 lets the system choose (see ``KVNode/httpPort``).
    public var httpAddress: PeerAddress
    /// Where the TCP transport listens; `nil` uses this member's ``KVMember/raftAddress``.
    public var raftListenAddress: PeerAddress?
    /// Names the cluster in the transport's handshake, so two clusters on one network never mix.
    public var clusterID = "kvstore"
    /// The node's settings (tick interval, timeouts, snapshots). The id is set from ``id``;
    /// lease reads are on (``Raft/RaftConfiguration/readLease``) for `?consistency=lease`.
    public var node: RaftNodeConfiguration
    /// What clients may send.
    public var limits = KVLimits()

    /// Creates a configuration with the library's defaults (100 ms ticks: elections after 1–2 s,
    /// proposals that fail after 5 s and reads after 3 s without a quorum), except that each
    /// membership step times out after ``membershipStepTimeoutTicks`` (10 s).
    public init(id: NodeID, members: [KVMember], dataDirectory: String, httpAddress: PeerAddress) {
        self.id = id
        self.members = members
        self.dataDirectory = dataDirectory
        self.httpAddress = httpAddress
        node = RaftNodeConfiguration(id: id)
        node.raft.readLease = ReadLease()
        node.membershipTimeoutTicks = Self.membershipStepTimeoutTicks
    }

    /// The ticks one membership step may take here: 100, 10 s at the default 100 ms tick.
    ///
    /// The library's default (600 ticks, a minute) leaves room for a new member that must first
    /// receive a large snapshot; a client of `POST /cluster/members` (which may take three steps:
    /// add a learner, wait for it to catch up, promote it) should not wait minutes for an
    /// answer. A step that times out answers 504 (`membershipTimeout`) and may still complete.
    /// Raise ``Raft/RaftNodeConfiguration/membershipTimeoutTicks`` in ``node`` for a database
    /// that takes longer than this to send.
    public static let membershipStepTimeoutTicks = 100

    /// Sets the tick interval to `milliseconds` and scales the timeouts counted in ticks so that
    /// they keep their length in time: a write without a quorum fails after 5 s, a read after
    /// 3 s, a membership step after 10 s. Elections are counted in ticks
    /// (``Raft/RaftConfiguration/electionTicks``): shorter ticks make them faster.
    ///
    /// - Throws: ``Raft/RaftError/Code/invalidConfiguration`` outside 1–10,000 ms.
    public mutating func setTickInterval(milliseconds: Int) throws(RaftError) {
        guard (1...10_000).contains(milliseconds) else {
            throw RaftError(.invalidConfiguration, "the tick interval must be 1 to 10000 ms, got \(milliseconds)")
        }
        node.tickInterval = .milliseconds(milliseconds)
        node.proposalTimeoutTicks = max(1, 5_000 / milliseconds)
        node.readTimeoutTicks = max(1, 3_000 / milliseconds)
        node.membershipTimeoutTicks = max(1, 10_000 / milliseconds)
    }

    /// This node's member entry, or why the configuration cannot run.
    func validatedSelf() throws(RaftError) -> KVMember {
        guard let me = members.first(where: { $0.id == id }) else {
            throw RaftError(.invalidConfiguration, "node \(id) is not among the members \(members.map(\.id))")
        }
        let ids = members.map(\.id)
        guard Set(ids).count == ids.count else { throw RaftError(.invalidConfiguration, "a member id appears twice in \(ids)") }
        guard !dataDirectory.isEmpty else { throw RaftError(.invalidConfiguration, "the data directory is empty") }
        return me
    }
}
