import Raft
import RaftTransportTCP
import Synchronization
import Testing

@testable import KVStore

@Suite struct KVMemberTests {
    @Test func parsesMembersAsTheCommandLineGivesThem() throws {
        let m = try KVMember(parsing: "2=10.0.0.2:7001/10.0.0.2:8001")
        #expect(m == KVMember(id: 2, raftAddress: PeerAddress(host: "10.0.0.2", port: 7001), httpAddress: PeerAddress(host: "10.0.0.2", port: 8001)))
        #expect(try KVMember(parsing: m.description) == m)
        #expect(try KVMember(parsing: "7=[::1]:7001").raftAddress == PeerAddress(host: "::1", port: 7001))
        #expect(try KVMember(parsing: "7=[::1]:7001").httpAddress == nil)
    }

    @Test(arguments: ["", "1", "0=h:1", "x=h:1", "1=h", "1=h:99999", "1=:80", "1=h:1/h:2/h:3", "1=[::1]7001", "1=h:1/"])
    func refusesWhatIsNotAMember(_ text: String) {
        #expect { try KVMember(parsing: text) } throws: { ($0 as? RaftError)?.code == .invalidArgument }
    }

    @Test func aConfigurationMustNameThisNodeOnceAmongItsMembers() throws {
        let a = KVMember(id: 1, raftAddress: PeerAddress(host: "h", port: 1))
        let b = KVMember(id: 2, raftAddress: PeerAddress(host: "h", port: 2))
        let http = PeerAddress(host: "h", port: 0)
        #expect(throws: RaftError.self) { try KVNodeConfiguration(id: 3, members: [a, b], dataDirectory: "d", httpAddress: http).validatedSelf() }
        #expect(throws: RaftError.self) { try KVNodeConfiguration(id: 1, members: [a, a, b], dataDirectory: "d", httpAddress: http).validatedSelf() }
        #expect(throws: RaftError.self) { try KVNodeConfiguration(id: 1, members: [a, b], dataDirectory: "", httpAddress: http).validatedSelf() }
        #expect(try KVNodeConfiguration(id: 2, members: [a, b], dataDirectory: "d", httpAddress: http).validatedSelf() == b)
    }

    @Test func aMembersTwoAddressesTravelInOneMembershipString() throws {
        let m = KVMember(id: 4, raftAddress: PeerAddress(host: "10.0.0.4", port: 7001), httpAddress: PeerAddress(host: "::1", port: 8001))
        #expect(m.membershipAddress == "raft=10.0.0.4:7001;http=[::1]:8001")
        #expect(try KVMember(id: 4, membershipAddress: m.membershipAddress) == m)
        // Unknown keys are skipped; a bare HOST:PORT is the raft address alone.
        #expect(try KVMember(id: 4, membershipAddress: "zone=b;raft=10.0.0.4:7001").httpAddress == nil)
        #expect(try KVMember(id: 4, membershipAddress: "10.0.0.4:7001") == KVMember(id: 4, raftAddress: m.raftAddress))
        for bad in ["", "http=h:1", "raft=h", "raft=h:1;http", "raft=h:1;http=h:99999"] {
            #expect { try KVMember(id: 4, membershipAddress: bad) } throws: { ($0 as? RaftError)?.code == .invalidArgument }
        }
    }

    @Test(arguments: ["127.0.0.1", "localhost", "node-4.example.com", "::1", "fe80::1:2", "::ffff:10.0.0.1"])
    func acceptsHostNamesAndIPAddressesInTheMembership(_ host: String) throws {
        let m = KVMember(id: 4, raftAddress: PeerAddress(host: host, port: 7004), httpAddress: PeerAddress(host: host, port: 8004))
        try m.checkMembershipAddress()
        #expect(try KVMember(id: 4, membershipAddress: m.membershipAddress) == m)
    }

    @Test(arguments: ["h;http=x", "a=b", "bad host", "node/5", "-node", "node-", "a..b", ".a", "::g", "1:2", "ünï", String(repeating: "a", count: 64)])
    func refusesHostsThatWouldNotReadBack(_ host: String) {
        for m in [
            KVMember(id: 4, raftAddress: PeerAddress(host: host, port: 7004)),
            KVMember(id: 4, raftAddress: PeerAddress(host: "127.0.0.1", port: 7004), httpAddress: PeerAddress(host: host, port: 8004)),
        ] {
            #expect { try m.checkMembershipAddress() } throws: { ($0 as? RaftError)?.code == .invalidArgument }
        }
    }

    @Test func theDirectoryFollowsTheMembershipAndFallsBackToTheAddressBook() {
        let book = (1...3).map { KVMember(id: NodeID(rawValue: UInt64($0)), raftAddress: PeerAddress(host: "h", port: 7000 + $0), httpAddress: PeerAddress(host: "h", port: 8000 + $0)) }
        let seen = Mutex<[NodeID: PeerAddress]>([:])
        let directory = KVClusterDirectory(me: 1, book: book) { peers in seen.withLock { $0 = peers } }
        let four = KVMember(id: 4, raftAddress: PeerAddress(host: "n4", port: 7004), httpAddress: PeerAddress(host: "n4", port: 8004))
        // Node 3 removed, node 4 added with its addresses in the membership.
        directory.follow(ConfState(voters: [1, 2], learners: [4], addresses: [4: four.membershipAddress]))
        #expect(directory.members == [book[0], book[1], four])
        #expect(seen.withLock { $0 } == [2: book[1].raftAddress, 4: four.raftAddress])
        #expect(directory.member(3) == book[2])
        // A membership address without HTTP keeps the book's. Node 4, removed by this change,
        // stays a peer until the next one (a removed leader needs the acknowledgements).
        directory.follow(ConfState(voters: [1, 2], addresses: [2: "raft=h2:9002"]))
        #expect(directory.member(2) == KVMember(id: 2, raftAddress: PeerAddress(host: "h2", port: 9002), httpAddress: book[1].httpAddress))
        #expect(directory.members.map(\.id) == [1, 2])
        #expect(seen.withLock { $0 } == [2: PeerAddress(host: "h2", port: 9002), 4: four.raftAddress])
        // The next change drops it (learner 5 has no address anywhere: not dialled).
        directory.follow(ConfState(voters: [1, 2], learners: [5], addresses: [2: "raft=h2:9002"]))
        #expect(seen.withLock { $0 } == [2: PeerAddress(host: "h2", port: 9002)])
        // While the membership is empty (a joining node), the book names the peers.
        directory.follow(.empty)
        #expect(seen.withLock { $0 }.keys.sorted() == [2, 3])
    }
}
