import Foundation
import HTTPTypes
import Raft
import Testing

@testable import KVStore

/// The membership routes over real TCP and HTTP on loopback: a fourth node added through the
/// API catches up, leadership moves, a member is removed and the rest keep writing.
@Suite(.serialized) struct KVMembershipTests {
    @Test func addAFourthNodeMoveLeadershipAndRemoveOne() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            try await cluster.putEventually("early", "1")

            // Node 4 starts with no membership; adding it on a follower is redirected to the leader.
            try await cluster.startJoining(4)
            let four = try #require(cluster.members[4])
            let follower = cluster.ids.first { $0 != leader && $0 != 4 }!
            let body = #"{"id": 4, "raft": "\#(four.raftAddress)", "http": "\#(four.httpAddress!)"}"#
            let added = try await cluster.http(follower, .post, "/cluster/members", body: body)
            #expect(added.status == .ok, "\(added)")
            let roles = (added.json["members"] as? [[String: Any]] ?? []).map { "\($0["id"] ?? "?")=\($0["role"] ?? "?")" }
            #expect(roles == ["1=voter", "2=voter", "3=voter", "4=voter"])

            // It caught up: a linearizable read on node 4 itself sees the earlier write.
            let node4 = try #require(cluster.nodes[4])
            #expect(try await node4.raft.read(.linearizable) { try $0.value(forKey: "early".bytes) } == "1".bytes)
            // Every node learned node 4's addresses from the membership (their address books do
            // not name it), and node 4 sees four voters.
            try await eventually(.seconds(5), "every node listing node 4 with its addresses") {
                for id in cluster.ids {
                    let members = try await cluster.http(id, .get, "/cluster", follow: false).json["members"] as? [[String: Any]] ?? []
                    guard members.count == 4, let m = members.first(where: { $0["id"] as? Int == 4 }),
                        m["http"] as? String == "\(four.httpAddress!)", m["raft"] as? String == "\(four.raftAddress)"
                    else { return false }
                }
                return true
            }

            // A change while another is unfinished is refused with 409 (a joint membership left
            // open on purpose keeps the first change unfinished for as long as the test needs).
            let leaderNode = try #require(cluster.nodes[leader])
            try await leaderNode.raft.changeMembership([.addLearner(9, address: "")], mode: .joint(autoLeave: false))
            let busy = try await cluster.http(leader, .delete, "/cluster/members/9")
            #expect(busy.status == .conflict && busy.errorCode == "membershipChangeInProgress", "\(busy)")
            try await leaderNode.raft.leaveJointMembership()
            #expect(try await cluster.http(leader, .delete, "/cluster/members/9").status == .ok)

            // Hand leadership to a follower, asking node 4 (redirected); then to any other voter.
            let moved = try await cluster.http(4, .post, "/cluster/leader", body: #"{"id": \#(follower)}"#)
            #expect(moved.status == .ok && moved.json["leader"] as? Int == Int(follower.rawValue), "\(moved)")
            #expect(try await cluster.leader() == follower)
            let anyone = try await cluster.http(follower, .post, "/cluster/leader")
            let next = try #require(anyone.json["leader"] as? Int, "\(anyone)")
            #expect(anyone.status == .ok && next != Int(follower.rawValue))
            #expect(try await cluster.leader() == NodeID(rawValue: UInt64(next)))

            // Remove the first leader (asking node 4, once it heard from the new leader); the
            // other three keep writing and node 4 reads it all.
            try await eventually(.seconds(5), "node 4 knowing the new leader") {
                try await node4.raft.status().raft.leader == NodeID(rawValue: UInt64(next))
            }
            let removed = try await cluster.http(4, .delete, "/cluster/members/\(leader)")
            #expect(removed.status == .ok, "\(removed)")
            #expect((removed.json["members"] as? [[String: Any]])?.count == 3)
            try await cluster.stop(leader)
            try await cluster.putEventually("late", "2")
            #expect(try await cluster.http(4, .get, "/kv/late").body == "2")
            #expect(try await cluster.http(4, .get, "/kv/early").body == "1")
            let view = try await cluster.http(4, .get, "/cluster", follow: false).json
            #expect((view["members"] as? [[String: Any]])?.compactMap { $0["id"] as? Int }.contains(Int(leader.rawValue)) == false)
        }
    }

    @Test func badMembershipRequestsGetA4xxWithAJSONError() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            let cases: [(HTTPRequest.Method, String, String?, HTTPResponse.Status, String)] = [
                (.post, "/cluster/members", "not json", .badRequest, "badBody"),
                (.post, "/cluster/members", nil, .badRequest, "badBody"),
                (.post, "/cluster/members", #"{"id": 5}"#, .badRequest, "badBody"),
                (.post, "/cluster/members", #"{"id": "five", "raft": "127.0.0.1:1"}"#, .badRequest, "badBody"),
                (.post, "/cluster/members", #"{"id": 0, "raft": "127.0.0.1:1"}"#, .badRequest, "badId"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "nowhere"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "127.0.0.1:0"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 2, "raft": "127.0.0.1:1"}"#, .badRequest, "invalidArgument"),
                // Addresses that would be committed and then unreadable, or misread.
                (.post, "/cluster/members", #"{"id": 5, "raft": "h;http=x:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "127.0.0.1:1", "http": "a=b:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "bad host:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "node/5:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "-node5.example:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "node5..example:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "[::g]:1"}"#, .badRequest, "badAddress"),
                (.post, "/cluster/members", #"{"id": 5, "raft": "127.0.0.1:1", "lerner": true}"#, .badRequest, "badBody"),
                (.delete, "/cluster/members/abc", nil, .badRequest, "badId"),
                (.delete, "/cluster/members/0", nil, .badRequest, "badId"),
                (.delete, "/cluster/members/77", nil, .notFound, "unknownMember"),
                (.post, "/cluster/leader", #"{"id": 77}"#, .notFound, "unknownMember"),
                (.post, "/cluster/leader", "[1]", .badRequest, "badBody"),
                (.post, "/cluster/leader", #"{"idd": 2}"#, .badRequest, "badBody"),
            ]
            for (method, path, body, status, code) in cases {
                let a = try await cluster.http(leader, method, path, body: body)
                #expect(a.status == status, "\(method) \(path) \(body ?? ""): \(a.status) \(a.body.prefix(300))")
                #expect(a.errorCode == code, "\(method) \(path) \(body ?? ""): \(a.body.prefix(300))")
                #expect(a.headers[.contentType] == "application/json")
            }
            // Naming the leader itself is nothing to do: 200 with the leader, and it still leads.
            let same = try await cluster.http(leader, .post, "/cluster/leader", body: #"{"id": \#(leader)}"#)
            #expect(same.status == .ok && same.json["leader"] as? Int == Int(leader.rawValue), "\(same)")
            #expect(try await cluster.leader() == leader)
            // Nothing changed.
            let members = try await cluster.http(leader, .get, "/cluster").json["members"] as? [[String: Any]] ?? []
            #expect(members.compactMap { $0["id"] as? Int } == [1, 2, 3])

            // A voter nobody answers for: it is added as a learner, which never catches up, so
            // the step times out (membershipTimeoutTicks, 5 s here) with 504, not a quorum error.
            let stuck = try await cluster.http(leader, .post, "/cluster/members", body: #"{"id": 5, "raft": "127.0.0.1:1"}"#)
            #expect(stuck.status == .gatewayTimeout && stuck.errorCode == "membershipTimeout", "\(stuck)")
            #expect(stuck.body.contains("timed out"), "\(stuck)")
        }
    }
}
