import Raft
import RaftTransportTCP
import Testing

/// The transport follows the membership (issue 8 item 4): new members are dialled at the
/// address their membership gives, removed ones dropped, without a restart.
@Suite struct MembershipAddressTests {
    @Test(arguments: [
        ("10.0.0.4:7000", PeerAddress(host: "10.0.0.4", port: 7000)),
        ("node4.example:1", PeerAddress(host: "node4.example", port: 1)),
        ("[::1]:7004", PeerAddress(host: "::1", port: 7004)),
    ])
    func addressesParse(_ text: String, _ expected: PeerAddress) throws {
        #expect(try PeerAddress(parsing: text) == expected)
        #expect(try PeerAddress(parsing: expected.description) == expected)
    }

    @Test(arguments: ["", "host", "host:", ":7000", "host:65536", "host:x", "::1:7000", "[::1]7000", "[::1]:"])
    func badAddressesAreRefused(_ text: String) {
        let e = #expect(throws: RaftError.self) { try PeerAddress(parsing: text) }
        #expect(e?.code == .invalidArgument)
    }

    @Test func peersFollowTheMembership() throws {
        let two = PeerAddress(host: "127.0.0.1", port: 7002)
        let three = PeerAddress(host: "127.0.0.1", port: 7003)
        let t = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "m", nodeID: 1, listenAddress: PeerAddress(host: "127.0.0.1", port: 0), peers: [2: two, 3: three]))
        // Node 4 joins with an address; node 3 leaves; node 2 keeps its configured address.
        t.membershipChanged(ConfState(voters: [1, 2], learners: [4], addresses: [4: "127.0.0.1:7004"]), of: 1)
        #expect(t.peers == [2: two, 4: PeerAddress(host: "127.0.0.1", port: 7004)])
        // An address in the membership wins over the configured one.
        t.membershipChanged(ConfState(voters: [1, 2, 4], addresses: [2: "127.0.0.1:8002", 4: "127.0.0.1:7004"]), of: 1)
        #expect(t.peers == [2: PeerAddress(host: "127.0.0.1", port: 8002), 4: PeerAddress(host: "127.0.0.1", port: 7004)])
        // An empty membership (a node not yet added) and another node's changes are ignored.
        t.membershipChanged(.empty, of: 1)
        t.membershipChanged(ConfState(voters: [9]), of: 9)
        #expect(t.peers.keys.sorted() == [2, 4])
        // A member the pending change removes stays a peer (a leader removing itself needs its
        // followers' acknowledgements to commit that) ...
        let before = ConfState(voters: [1, 2, 4], addresses: [2: "127.0.0.1:8002", 4: "127.0.0.1:7004"])
        let after = ConfState(voters: [1, 2], addresses: [2: "127.0.0.1:8002"])
        t.membershipChanged(after, previous: before, of: 1)
        #expect(t.peers == [2: PeerAddress(host: "127.0.0.1", port: 8002), 4: PeerAddress(host: "127.0.0.1", port: 7004)])
        // ... and is dropped once it commits.
        t.membershipChanged(after, previous: nil, of: 1)
        #expect(t.peers == [2: PeerAddress(host: "127.0.0.1", port: 8002)])
    }
}
