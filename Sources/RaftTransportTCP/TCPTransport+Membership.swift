import Raft

extension PeerAddress {
    /// Parses `host:port`, `[v6-address]:port` or `v6-address` forms written by ``description``;
    /// `nil` for anything else (no port, a port out of range, an empty host).
    public init?(parsing text: String) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (1...65_535).contains(p) else { return nil }
        self.init(host: String(host), port: p)
    }
}

extension TCPTransport {
    /// Follows the membership (``RaftTransport/membershipChanged(_:of:)``): the peers become the
    /// members other than this node, each at the address its membership gives
    /// (``ConfState/addresses``, `host:port`), or at the configured one when it has none or one
    /// that does not parse. Removed members are dropped: their connections close and they may no
    /// longer connect. An empty membership (a node waiting to be added) keeps the configured
    /// peers.
    public func membershipChanged(_ membership: ConfState, of node: NodeID) {
        guard node == configuration.nodeID, !membership.isEmpty else { return }
        let known = peers.merging(configuration.peers) { current, _ in current }
        var next: [NodeID: PeerAddress] = [:]
        for member in membership.members where member != node {
            if let text = membership.addresses[member], let address = PeerAddress(parsing: text) {
                next[member] = address
            } else if let address = known[member] {
                next[member] = address
            }
        }
        setPeers(next)
    }
}
