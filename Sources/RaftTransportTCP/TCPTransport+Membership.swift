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
    /// Follows the membership (``/Raft/RaftTransport/membershipChanged(_:of:)``), with no
    /// change pending: ``membershipChanged(_:previous:of:)`` with `previous` `nil`.
    public func membershipChanged(_ membership: ConfState, of node: NodeID) {
        membershipChanged(membership, previous: nil, of: node)
    }

    /// Follows the membership (``/Raft/RaftTransport/membershipChanged(_:previous:of:)``): the
    /// peers become the members other than this node, of `membership` and, while the change
    /// that made it is pending, of `previous` too (a leader that removes itself needs its
    /// followers' acknowledgements to commit its own removal). Each is at the address its
    /// membership gives (``/Raft/ConfState/addresses``, `host:port`; the newer membership's
    /// first), or at the one known or configured when it has none or one that does not parse (or
    /// names port 0). Members of neither are dropped: their connections close and they may no
    /// longer connect. An empty membership (a node waiting to be added) keeps the configured
    /// peers.
    public func membershipChanged(_ membership: ConfState, previous: ConfState?, of node: NodeID) {
        guard node == configuration.nodeID, !membership.isEmpty else { return }
        let known = peers.merging(configuration.peers) { current, _ in current }
        var next: [NodeID: PeerAddress] = [:]
        for conf in [membership, previous ?? .empty] {
            for member in conf.members where member != node && next[member] == nil {
                if let text = conf.addresses[member], let address = try? PeerAddress(parsing: text), address.port != 0 {
                    next[member] = address
                } else if let address = known[member] {
                    next[member] = address
                }
            }
        }
        setPeers(next)
    }
}
