import Raft

extension PeerAddress {
    /// Parses `host:port`, or `[v6-address]:port` for IPv6 (the form ``description`` writes).
    /// Port 0 is accepted (a listen address that lets the system choose).
    ///
    /// - Throws: ``/Raft/RaftError/Code/invalidArgument`` for anything else: no port, a port out
    ///   of range, an empty host, an IPv6 address without brackets.
    public init(parsing input: some StringProtocol) throws(RaftError) {
        let text = Substring(input)
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw RaftError(.invalidArgument, "'\(text)' has no port: expected [HOST]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw RaftError(.invalidArgument, "'\(text)' has no port: expected HOST:PORT") }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            if host.contains(":") { throw RaftError(.invalidArgument, "'\(text)': write an IPv6 address in brackets, [HOST]:PORT") }
        }
        guard !host.isEmpty, let p = Int(port), (0...65_535).contains(p) else {
            throw RaftError(.invalidArgument, "'\(text)' is not HOST:PORT with a port from 0 to 65535")
        }
        self.init(host: String(host), port: p)
    }
}

extension TCPTransport {
    /// Follows the membership (``/Raft/RaftTransport/membershipChanged(_:of:)``): the peers become the
    /// members other than this node, each at the address its membership gives
    /// (``/Raft/ConfState/addresses``, `host:port`), or at the configured one when it has none or one
    /// that does not parse (or names port 0). An empty membership (a node waiting to be added)
    /// keeps the configured peers.
    ///
    /// A member the latest change removed stays a peer until the next change: the change is
    /// appended, not yet committed, when the node hears of it, and a leader that removes itself
    /// needs its followers' acknowledgements to commit its own removal (thesis §4.2.2). After
    /// the next change its connections close and it may no longer connect.
    public func membershipChanged(_ membership: ConfState, of node: NodeID) {
        guard node == configuration.nodeID, !membership.isEmpty else { return }
        let (known, leaving) = state.withLock { s -> ([NodeID: PeerAddress], [NodeID]) in
            if s.membership != membership {
                s.previousMembers = s.membership?.members ?? []
                s.membership = membership
            }
            return (s.peers, s.previousMembers)
        }
        let addresses = known.merging(configuration.peers) { current, _ in current }
        var next: [NodeID: PeerAddress] = [:]
        for member in membership.members where member != node {
            if let text = membership.addresses[member], let address = try? PeerAddress(parsing: text), address.port != 0 {
                next[member] = address
            } else if let address = addresses[member] {
                next[member] = address
            }
        }
        for member in leaving where member != node && next[member] == nil {
            if let address = addresses[member] { next[member] = address }
        }
        setPeers(next)
    }
}
