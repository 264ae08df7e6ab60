import Foundation
import HTTPTypes
import Raft
import Testing

@testable import KVStore

@Suite(.serialized) struct KVHTTPTests {
    @Test func writeReadCompareAndSwapDeleteAndList() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            let follower = cluster.ids.first { $0 != leader }!

            // A write on a follower is redirected to the leader.
            let redirected = try await cluster.http(follower, .put, "/kv/greeting", body: "hello", follow: false)
            #expect(redirected.status == .temporaryRedirect)
            #expect(redirected.headers[.location] == "http://127.0.0.1:\(cluster.members[leader]!.httpAddress!.port)/kv/greeting")
            #expect(redirected.errorCode == "notLeader")
            #expect(try await cluster.http(follower, .put, "/kv/greeting", body: "hello").status == .noContent)
            // Answered after commit and apply: a linearizable read anywhere sees it.
            for id in cluster.ids {
                let a = try await cluster.http(id, .get, "/kv/greeting")
                #expect(a.status == .ok && a.body == "hello", "node \(id): \(a)")
            }
            let lease = try await cluster.http(leader, .get, "/kv/greeting?consistency=lease")
            #expect(lease.status == .ok && lease.body == "hello")
            try await eventually(.seconds(5), "a stale read on the follower seeing the write") {
                try await cluster.http(follower, .get, "/kv/greeting?consistency=stale", follow: false).body == "hello"
            }
            // Keys with slashes and escapes.
            #expect(try await cluster.http(leader, .put, "/kv/a%20b/c", body: "spaced").status == .noContent)
            #expect(try await cluster.http(leader, .get, "/kv/a%20b/c").body == "spaced")

            // Compare-and-swap: a mismatch answers 412 with the current value, a match swaps.
            let mismatch = try await cluster.http(leader, .put, "/kv/greeting?prev=bonjour", body: "hola")
            #expect(mismatch.status == .preconditionFailed)
            #expect(mismatch.errorCode == "mismatch")
            #expect((mismatch.json["current"] as? [String: Any])?["value"] as? String == "hello")
            #expect(try await cluster.http(follower, .put, "/kv/greeting?prev=hello", body: "hola").status == .noContent)
            #expect(try await cluster.http(follower, .get, "/kv/greeting").body == "hola")
            let absent = try await cluster.http(leader, .put, "/kv/nothing?prev=x", body: "y")
            #expect(absent.status == .preconditionFailed && absent.json["exists"] as? Bool == false)

            // Delete: 204, then 404.
            #expect(try await cluster.http(follower, .delete, "/kv/greeting").status == .noContent)
            #expect(try await cluster.http(leader, .delete, "/kv/greeting").errorCode == "noSuchKey")
            #expect(try await cluster.http(leader, .get, "/kv/greeting").status == .notFound)

            // List by prefix, in pages.
            for i in 1...5 { #expect(try await cluster.http(leader, .put, "/kv/list/\(i)", body: "v\(i)").status == .noContent) }
            #expect(try await cluster.http(leader, .put, "/kv/other", body: "o").status == .noContent)
            var seen: [String] = []
            var after: String?
            for _ in 0..<5 {
                let page = try await cluster.http(follower, .get, "/kv?prefix=list/&limit=2" + (after.map { "&after=\($0)" } ?? ""))
                #expect(page.status == .ok)
                let entries = page.json["entries"] as? [[String: Any]] ?? []
                #expect(entries.count <= 2)
                seen += entries.compactMap { $0["key"] as? String }
                after = page.json["next"] as? String
                if after == nil { break }
            }
            #expect(seen == (1...5).map { "list/\($0)" })
        }
    }

    @Test func clusterMetricsHealthAndStatusPage() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            try await cluster.putEventually("k", "v")
            try await eventually(.seconds(5), "every node reporting the same leader") {
                for id in cluster.ids {
                    let c = try await cluster.http(id, .get, "/cluster").json
                    guard c["leader"] as? Int == Int(leader.rawValue), (c["members"] as? [Any])?.count == 3 else { return false }
                }
                return true
            }
            let view = try await cluster.http(leader, .get, "/cluster")
            #expect(view.json["role"] as? String == "leader")
            #expect((view.json["applied"] as? Int ?? 0) >= 2)
            #expect(view.headers[.accessControlAllowOrigin] == "*")
            let members = view.json["members"] as? [[String: Any]] ?? []
            #expect(members.allSatisfy { $0["http"] is String && $0["raft"] is String && $0["match"] is Int })
            // The members are the node's Raft membership: three voters, committed, not joint.
            #expect(members.map { $0["role"] as? String } == ["voter", "voter", "voter"])
            #expect(view.json["membershipCommitted"] as? Bool == true && view.json["joint"] as? Bool == false)

            let metrics = try await cluster.http(leader, .get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.body.contains("kvstore_http_requests_total"))
            #expect(metrics.body.contains("raft_"))
            #expect(try await cluster.http(leader, .get, "/health").json["status"] as? String == "ok")
            let page = try await cluster.http(leader, .get, "/")
            #expect(page.status == .ok && page.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(page.body.contains("/cluster") && !page.body.contains("src=\"http"))
        }
    }

    @Test func theClusterKeepsWritingWhenTheLeaderStopsAndItCatchesUpOnRestart() async throws {
        try await withCluster { cluster in
            let first = try await cluster.leader()
            for i in 0..<10 { try await cluster.putEventually("before\(i)", "\(i)") }
            try await cluster.stop(first)
            let second = try await cluster.leader()
            #expect(second != first)
            for i in 0..<10 { try await cluster.putEventually("after\(i)", "\(i)") }

            try await cluster.start(first)
            let keys = (0..<10).flatMap { ["before\($0)", "after\($0)"] }
            try await eventually(.seconds(15), "the restarted node holding every key") {
                for key in keys {
                    let a = try await cluster.http(first, .get, "/kv/\(key)?consistency=stale", follow: false)
                    guard a.status == .ok else { return false }
                }
                return true
            }
            for (i, key) in keys.enumerated() {
                let a = try await cluster.http(first, .get, "/kv/\(key)?consistency=stale", follow: false)
                #expect(a.body == "\(i / 2)", "\(key) on the restarted node: \(a)")
            }
        }
    }

    @Test func badInputGetsA4xxWithAJSONError() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            let limits = KVLimits()
            let cases: [(HTTPRequest.Method, String, String?, HTTPResponse.Status, String)] = [
                (.put, "/kv", "v", .badRequest, "emptyKey"),
                (.put, "/kv/", "v", .badRequest, "emptyKey"),
                (.delete, "/kv", nil, .badRequest, "emptyKey"),
                (.put, "/kv/" + String(repeating: "k", count: limits.maxKeyBytes + 1), "v", .badRequest, "keyTooLong"),
                (.put, "/kv/big", String(repeating: "v", count: limits.maxValueBytes + 1), .contentTooLarge, "valueTooLarge"),
                (.get, "/kv/%zz", nil, .badRequest, "badKey"),
                (.get, "/kv/k?consistency=eventual", nil, .badRequest, "badConsistency"),
                (.get, "/kv?limit=0", nil, .badRequest, "badLimit"),
                (.get, "/kv?limit=many", nil, .badRequest, "badLimit"),
                (.get, "/kv?limit=\(limits.maxListLimit + 1)", nil, .badRequest, "badLimit"),
                (.get, "/nowhere", nil, .notFound, "unknownRoute"),
                (.post, "/kv/k", "v", .notFound, "unknownRoute"),
            ]
            for (method, path, body, status, code) in cases {
                let a = try await cluster.http(leader, method, path, body: body)
                #expect(a.status == status, "\(method) \(path.prefix(40)): \(a.status) \(a.body.prefix(200))")
                #expect(a.errorCode == code, "\(method) \(path.prefix(40)): \(a.body.prefix(200))")
                #expect(a.headers[.contentType] == "application/json")
            }
            // Nothing above reached the log as a write.
            #expect(try await cluster.http(leader, .get, "/kv?prefix=").json["entries"] as? [Any] != nil)
            #expect((try await cluster.http(leader, .get, "/kv?prefix=").json["entries"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func aNodeWithoutQuorumAnswers503() async throws {
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            try await cluster.putEventually("k", "v")
            for id in cluster.ids where id != leader { try await cluster.stop(id) }
            // The node's proposal timeout is 50 ticks of 20 ms, its read timeout 30: both answer
            // well inside the client's 10 s timeout, which would fail the request with an error.
            let write = try await cluster.http(leader, .put, "/kv/k", body: "w")
            #expect(write.status == .serviceUnavailable, "\(write)")
            #expect(["noQuorum", "noLeader", "proposalDropped"].contains(write.errorCode ?? ""), "\(write.body)")
            #expect(write.headers[.retryAfter] == "1")
            let read = try await cluster.http(leader, .get, "/kv/k")
            #expect(read.status == .serviceUnavailable, "\(read)")
            // A stale read still answers from what this node holds.
            #expect(try await cluster.http(leader, .get, "/kv/k?consistency=stale").body == "v")
        }
    }
}

/// Runs `body` with a new three-node cluster and stops it afterwards, whatever `body` does.
func withCluster(_ body: (KVTestCluster) async throws -> Void) async throws {
    let cluster = try await KVTestCluster()
    do {
        try await body(cluster)
    } catch {
        await cluster.stopAll()
        throw error
    }
    await cluster.stopAll()
}
