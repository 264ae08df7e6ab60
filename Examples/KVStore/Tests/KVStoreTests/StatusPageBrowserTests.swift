import Foundation
import Raft
import Testing

@testable import KVStore

/// The status page in a real browser: headless Chromium (Debian's `chromium`, which .ci/run
/// installs) loads `/` from a running three-node cluster; the DOM after its scripts ran must
/// show three nodes, all up, and one leader.
@Suite(.serialized) struct StatusPageBrowserTests {
    @Test func theStatusPageShowsThreeNodesAndOneLeader() async throws {
        let chromium = try #require(
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
            "the status page test needs Debian's chromium package (.ci/run installs it)")
        try await withCluster { cluster in
            let leader = try await cluster.leader()
            try await cluster.putEventually("k", "v")
            let dir = cluster.directory.path
            let port = cluster.members[1]!.httpAddress!.port
            var dom = ""
            // The page fills its table once every node answered; a first load right after an
            // election can still see a node without a leader, so try a few times.
            for _ in 0..<5 {
                dom = try await Self.renderedDOM(chromium: chromium, url: "http://127.0.0.1:\(port)/", scratch: dir)
                if dom.contains("leader: \(leader)") { break }
            }
            #expect(dom.components(separatedBy: "<tr data-node=").count - 1 == 3, "\(dom.suffix(2000))")
            #expect(dom.components(separatedBy: "data-role=\"leader\"").count - 1 == 1, "\(dom.suffix(2000))")
            #expect(dom.contains("3 nodes, 3 up; leader: \(leader)"), "\(dom.suffix(2000))")

            // A node that is down shows as down.
            let down = cluster.ids.first { $0 != leader && $0 != 1 }!
            try await cluster.stop(down)
            dom = try await Self.renderedDOM(chromium: chromium, url: "http://127.0.0.1:\(port)/", scratch: dir)
            #expect(dom.contains("<tr data-node=\"\(down)\" data-role=\"down\""), "\(dom.suffix(2000))")
            #expect(dom.contains("3 nodes, 2 up"), "\(dom.suffix(2000))")
        }
    }

    /// Loads `url` in headless Chromium and returns the DOM once its scripts ran (Chromium's
    /// virtual time budget lets the page's fetches finish). Bounded: killed after 60 s.
    static func renderedDOM(chromium: String, url: String, scratch: String) async throws -> String {
        let out = scratch + "/dom-\(UUID().uuidString).html"
        let child = try ChildProcess(
            executable: "/usr/bin/timeout",
            arguments: [
                "60", chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--user-data-dir=\(scratch)/chromium-profile", "--virtual-time-budget=3000", "--dump-dom", url,
            ],
            stdout: .file(out), stderr: .file(scratch + "/chromium.err"))
        // Polled, not waited for on this thread: the nodes answering the page run in this
        // process, on the same cooperative threads.
        while child.exited() == nil { try await Task.sleep(for: .milliseconds(50)) }
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }
}
