import Foundation
import HTTPTypes
import Raft
import Testing

@testable import KVStore

/// The README's quick start with the real binary: `kvstore local`, then the walk-through's
/// `curl` calls as subprocesses (write, read, CAS, delete, kill the leader, write again, start
/// it again and read from it, add a fourth node, remove one and write again, move leadership),
/// Ctrl-C, and a second start on the same directory that holds the data and not the removed node.
@Suite(.serialized) struct QuickStartTests {
    @Test func theReadmeWalkThroughWorks() async throws {
        let kvstore = try #require(siblingExecutable("kvstore"), "kvstore is not next to the test binary: `swift build --build-tests` builds it")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "the walk-through needs curl")
        let dir = try TemporaryDirectory("kvstore-quickstart")
        defer { dir.remove() }
        // Ports in a range the system does not hand out for outgoing connections on Linux.
        let base = 20000 + Int(UInt32.random(in: 0..<400)) * 20
        let http = (1...3).map { base + 10 + $0 - 1 }
        let local = try LocalRun(kvstore: kvstore, dir: dir.path, raftPort: base, httpPort: http[0])
        defer { local.killAll() }

        try await waitForLeader(http)
        #expect(try curl("-X", "PUT", "-d", "hello", "http://127.0.0.1:\(http[0])/kv/greeting") == "")
        #expect(try curl("http://127.0.0.1:\(http[1])/kv/greeting") == "hello")
        #expect(try curl("-X", "PUT", "-d", "hola", "http://127.0.0.1:\(http[2])/kv/greeting?prev=hello") == "")
        #expect(try curl("http://127.0.0.1:\(http[2])/kv/greeting") == "hola")
        #expect(try local.printed().contains("First run in \(dir.path)/data: starting the founders, nodes 1, 2, 3"))
        // Delete, on a key of its own (greeting is read from node 4 below).
        #expect(try curl("-X", "PUT", "-d", "soon-gone", "http://127.0.0.1:\(http[0])/kv/scratch") == "")
        #expect(try curl("-X", "DELETE", "http://127.0.0.1:\(http[0])/kv/scratch") == "")
        #expect(try curl("-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(http[0])/kv/scratch") == "404")

        // Kill the leader; the other two elect another and take writes.
        let leader = try await waitForLeader(http)
        let pids = try local.pids()
        kill(try #require(pids[leader]), SIGKILL)
        try await eventually(.seconds(20), "a write succeeding after the leader was killed") {
            let survivor = http[leader == 1 ? 1 : 0]
            return (try? curl("-f", "-X", "PUT", "-d", "again", "http://127.0.0.1:\(survivor)/kv/after-kill")) == ""
        }
        // Start it again from the supervisor's prompt; it catches up.
        local.child.send(line: "start \(leader)")
        try await eventually(.seconds(20), "the restarted node holding the write made while it was down") {
            (try? curl("http://127.0.0.1:\(http[Int(leader.rawValue) - 1])/kv/after-kill?consistency=stale")) == "again"
        }

        // Add a fourth node: `add 4` at the prompt starts it waiting to join; the README's POST
        // adds it, and it catches up.
        let http4 = base + 10 + 3
        local.child.send(line: "add 4")
        try await eventually(.seconds(20), "node 4 answering /health") { (try? curl("-f", "http://127.0.0.1:\(http4)/health")) != nil }
        let added = try curl(
            "-f", "-X", "POST", "-d", #"{"id": 4, "raft": "127.0.0.1:\#(base + 3)", "http": "127.0.0.1:\#(http4)"}"#,
            "http://127.0.0.1:\(http[0])/cluster/members")
        #expect(added.contains(#""id":4,"raft":"127.0.0.1:\#(base + 3)","role":"voter""#), "\(added)")
        try await eventually(.seconds(20), "node 4 holding the data") {
            (try? curl("http://127.0.0.1:\(http4)/kv/greeting?consistency=stale")) == "hola"
        }
        // Remove node 3, stop it, and keep writing.
        _ = try curl("-f", "-X", "DELETE", "http://127.0.0.1:\(http[0])/cluster/members/3")
        local.child.send(line: "stop 3")
        try await eventually(.seconds(20), "a write after node 3 was removed") {
            (try? curl("-f", "-X", "PUT", "-d", "still-writing", "http://127.0.0.1:\(http[0])/kv/after")) == ""
        }
        // Node 4 learns the new membership when the leader's next message reaches it.
        try await eventually(.seconds(20), "node 4's /cluster listing members 1, 2 and 4") {
            guard let view = try? curl("http://127.0.0.1:\(http4)/cluster") else { return false }
            let json = try? JSONSerialization.jsonObject(with: Data(view.utf8)) as? [String: Any]
            return (json?["members"] as? [[String: Any]])?.compactMap { $0["id"] as? Int } == [1, 2, 4]
        }
        // Hand leadership to node 2 (200 at once if it leads already).
        let moved = try curl("-f", "-X", "POST", "-d", #"{"id": 2}"#, "http://127.0.0.1:\(http[0])/cluster/leader")
        #expect(moved == #"{"leader":2}"#, "\(moved)")
        #expect(try await waitForLeader([http[0], http[1], http4]) == 2)
        // As the README says: a removed node's directory goes, so the next start leaves it out.
        try await eventually(.seconds(20), "node 3 stopping") {
            guard let pid = try local.pids()[3] else { return false }
            return kill(pid, 0) != 0
        }
        try FileManager.default.removeItem(atPath: dir.path + "/data/node3")

        // Ctrl-C stops every node, and every node process is gone.
        local.child.signal(SIGINT)
        let exit = await waitForExit(local.child, within: .seconds(20))
        #expect(exit == .exited(0), "kvstore local \(exit.map { "\($0)" } ?? "did not stop within 20 s")")
        for pid in try local.pids().values where kill(pid, 0) == 0 {
            Issue.record("node process \(pid) still runs after kvstore local stopped")
            kill(pid, SIGKILL)
        }

        // The same directory resumes the same cluster (nodes 1, 2 and 4), with its data.
        let again = try LocalRun(kvstore: kvstore, dir: dir.path, raftPort: base, httpPort: http[0])
        defer { again.killAll() }
        try await waitForLeader([http[0], http[1], http4])
        // Node 3, removed and its directory deleted, does not start again (it would bootstrap a
        // conflicting cluster from an empty log).
        let started = try again.pids()
        #expect(started.keys.sorted() == [1, 2, 4], "\(started)")
        let printed = try again.printed()
        #expect(printed.contains("Starting the nodes that have a directory in \(dir.path)/data: 1, 2, 4"), "\(printed)")
        #expect((try? curl("--max-time", "2", "http://127.0.0.1:\(http[2])/health")) == nil, "something answers on node 3's HTTP port")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/data/node3"), "node 3's directory came back")
        #expect(try curl("http://127.0.0.1:\(http[0])/kv/greeting") == "hola")
        #expect(try curl("http://127.0.0.1:\(http[1])/kv/after-kill") == "again")
        #expect(try curl("http://127.0.0.1:\(http4)/kv/after") == "still-writing")
        again.child.signal(SIGTERM)
        #expect(await waitForExit(again.child, within: .seconds(20)) == .exited(0))
    }

    /// `kvstore local` started as a child, its standard output in a file.
    struct LocalRun {
        let child: ChildProcess
        let output: String

        init(kvstore: String, dir: String, raftPort: Int, httpPort: Int, extra: [String] = []) throws {
            output = dir + "/local-\(UUID().uuidString).out"
            child = try ChildProcess(
                executable: kvstore,
                arguments: ["local", "--dir", dir + "/data", "--raft-port", "\(raftPort)", "--http-port", "\(httpPort)"] + extra,
                stdinPipe: true, stdout: .file(output), stderr: .file(dir + "/local.err"), newProcessGroup: true)
        }

        /// What `kvstore local` printed so far.
        func printed() throws -> String { try String(contentsOfFile: output, encoding: .utf8) }

        /// Kills `kvstore local` and every node it started, so that a test failing halfway leaves
        /// nothing running: each node pid it reported that is still in its process group (a pid
        /// reused by an unrelated process is not), then the whole group (the nodes are in the
        /// supervisor's group, so this reaches nodes it started but had not reported yet).
        func killAll() {
            for pid in ((try? pids()) ?? [:]).values where getpgid(pid) == child.pid { kill(pid, SIGKILL) }
            child.signalGroup(SIGKILL)
        }

        /// The node pids `kvstore local` printed (and the ones it started later).
        func pids() throws -> [NodeID: pid_t] {
            var pids: [NodeID: pid_t] = [:]
            let text = (try? printed()) ?? ""
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard words.first == "node", words.count >= 2, let id = UInt64(words[1].dropLast()),
                    let at = words.firstIndex(of: "pid"), at + 1 < words.count, let pid = pid_t(words[at + 1])
                else { continue }
                pids[NodeID(rawValue: id)] = pid
            }
            return pids
        }
    }
}

/// Waits until one of the nodes reports a leader that the others agree on.
@discardableResult
func waitForLeader(_ http: [Int]) async throws -> NodeID {
    var leader: NodeID?
    try await eventually(.seconds(30), "kvstore local electing a leader") {
        let views = http.compactMap { port -> Int? in
            guard let text = try? curl("-f", "http://127.0.0.1:\(port)/cluster"),
                let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            else { return nil }
            return json["leader"] as? Int
        }
        guard let first = views.first, views.count >= 2, views.allSatisfy({ $0 == first }) else { return false }
        leader = NodeID(rawValue: UInt64(first))
        return true
    }
    return leader!
}

func waitForExit(_ child: ChildProcess, within limit: Duration) async -> ChildProcess.Exit? {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if let exit = child.exited() { return exit }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

/// Runs `curl -sS -L --max-time 10 ARGS` and returns what it printed; throws when curl fails.
func curl(_ arguments: String...) throws -> String {
    let out = NSTemporaryDirectory() + "kvstore-curl-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let child = try ChildProcess(executable: "/usr/bin/curl", arguments: ["-sS", "-L", "--max-time", "10"] + arguments, stdout: .file(out), stderr: .file(out + ".err"))
    defer { try? FileManager.default.removeItem(atPath: out + ".err") }
    let exit = child.waitForExit()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    guard exit == .exited(0) else {
        throw RaftError(.io, "curl \(arguments.joined(separator: " ")) \(exit): \((try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? "")")
    }
    return text
}
