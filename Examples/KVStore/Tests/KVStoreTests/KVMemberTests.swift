import Raft
import RaftTransportTCP
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
}
