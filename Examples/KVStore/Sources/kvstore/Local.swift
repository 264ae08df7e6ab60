import ArgumentParser
import Dispatch
import Foundation
import KVStore
import Logging
import Raft
import RaftTransportTCP

/// `kvstore local`: three nodes on this machine, as three child processes.
struct Local: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a three-node cluster on this machine (three child processes).",
        discussion: """
            Node N listens for peers on --raft-port + N - 1 and for HTTP on --http-port + N - 1, and
            keeps its data in DIR/nodeN. The first run (no DIR/nodeN yet) starts the founders, nodes
            1-3. Starting again on the same --dir resumes the same cluster: exactly the nodes whose
            DIR/nodeN exists start (nodes added with 'add N' too; delete a removed node's directory
            so that it does not start).

            While it runs, type a command and Enter:
              kill N    kill node N with SIGKILL (a crash)
              stop N    stop node N with SIGTERM (an orderly stop)
              start N   start node N again
              add N     start a new node N (4, 5, ...) that waits to join; then add it to the
                        membership: curl -L -X POST -d '{"id": N, "raft": ..., "http": ...}'
                        http://HOST:HTTP_PORT/cluster/members (the line printed says it exactly)
              status    show which nodes run
            Ctrl-C (or SIGTERM) stops every node and waits for them.

            With --tls-dir DIR, the peer traffic runs mutual TLS: DIR holds ca.pem (the cluster's
            certificate authority) and nodeN.pem and nodeN.key (node N's certificate and key).
            """)

    @Option(help: "The directory holding the three nodes' data.")
    var dir = "kvstore-data"

    @Option(help: "The host every node listens on.")
    var host = "127.0.0.1"

    @Option(help: "Node 1's peer port; nodes 2 and 3 use the next two.")
    var raftPort = 7001

    @Option(help: "Node 1's HTTP port; nodes 2 and 3 use the next two.")
    var httpPort = 8001

    @Option(help: "A directory with ca.pem, nodeN.pem and nodeN.key: peers talk mutual TLS.")
    var tlsDir: String?

    @OptionGroup var log: LogOptions

    enum Event: Sendable {
        case signal(Int32)
        case command(String)
        case tick
    }

    func run() async throws {
        log.bootstrap()
        let logger = Logger(label: "kvstore.local")
        let executable = Self.ownExecutable()
        let founders: [NodeID] = [1, 2, 3]
        // The first run (no node directory yet) starts the founders, which bootstrap the cluster.
        // A later run starts exactly the nodes whose directory exists: a founder whose directory
        // is gone (a removed node) must not start again with an empty log, which would bootstrap
        // a conflicting cluster or bring back a voter that forgot its vote.
        let existing = Self.nodeDirectories(in: dir)
        let firstRun = existing.isEmpty
        var ids = firstRun ? founders : existing
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func member(_ id: NodeID) -> KVMember {
            let offset = Int(id.rawValue) - 1
            return KVMember(
                id: id, raftAddress: PeerAddress(host: host, port: raftPort + offset), httpAddress: PeerAddress(host: host, port: httpPort + offset))
        }
        func arguments(_ id: NodeID) -> [String] {
            let peers = ids.map { member($0).description }.joined(separator: ",")
            var a = ["serve", "--id", "\(id)", "--peers", peers, "--data-dir", "\(dir)/node\(id)", "--log-level", "\(log.logLevel)"]
            // Only a founder on the first run bootstraps; every other node joins (harmless once its
            // directory holds a log, and safe without one: it waits to be added), so a founder id
            // added again with `add N` after a later start never bootstraps a cluster of its own.
            if !(firstRun && founders.contains(id)) { a.append("--join") }
            if let tlsDir {
                a += ["--tls-cert", "\(tlsDir)/node\(id).pem", "--tls-key", "\(tlsDir)/node\(id).key", "--tls-ca", "\(tlsDir)/ca.pem"]
            }
            return a
        }
        var running: [NodeID: ChildProcess] = [:]
        func describe(_ id: NodeID) -> String {
            "node \(id): HTTP http://\(member(id).httpAddress!)  peers \(member(id).raftAddress)  pid \(running[id].map { "\($0.pid)" } ?? "-")"
        }

        let (events, post) = AsyncStream.makeStream(of: Event.self)
        let signals = Self.watchSignals(post)
        Self.readCommands(post)
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                post.yield(.tick)
            }
        }
        defer {
            ticker.cancel()
            for s in signals { s.cancel() }
        }

        func hasDirectory(_ id: NodeID) -> Bool { Self.isDirectory("\(dir)/node\(id)") }
        func start(_ id: NodeID) {
            do {
                running[id] = try ChildProcess(executable: executable, arguments: arguments(id))
                logger.info("node \(id) started", metadata: ["pid": "\(running[id]!.pid)"])
            } catch {
                logger.error("node \(id) could not start: \(error)")
            }
        }
        Self.say(
            firstRun
                ? "First run in \(dir): starting the founders, nodes \(Self.list(ids))"
                : "Starting the nodes that have a directory in \(dir): \(Self.list(ids))")
        for id in ids { start(id) }
        // Addresses to show: the lowest-numbered nodes started (node 1 may have been removed).
        let first = member(ids[0]).httpAddress!
        let second = member(ids.count > 1 ? ids[1] : ids[0]).httpAddress!
        Self.say("""
            A \(ids.count)-node KVStore cluster, data in \(dir)\(tlsDir == nil ? "" : ", peers over mutual TLS"):
            \(ids.map { "  " + describe($0) }.joined(separator: "\n"))
            Status page: http://\(first)/
            Try: curl -L -X PUT -d hello http://\(first)/kv/greeting && curl -L http://\(second)/kv/greeting
            Type 'kill N', 'stop N', 'start N', 'add N' or 'status'; Ctrl-C stops the cluster.
            """)

        for await event in events {
            switch event {
            case .signal(let number):
                logger.info("signal \(number): stopping the nodes")
                await Self.stopAll(running, logger: logger)
                return
            case .tick:
                for (id, child) in running {
                    guard let exit = child.exited() else { continue }
                    running[id] = nil
                    logger.notice("node \(id) \(exit); the others keep going. Type 'start \(id)' to start it again")
                }
            case .command(let line):
                let words = line.split(separator: " ")
                let id = words.count == 2 ? UInt64(words[1]).map(NodeID.init(rawValue:)) : nil
                switch (words.first, id) {
                case ("kill"?, let id?) where running[id] != nil: running[id]!.signal(SIGKILL)
                case ("stop"?, let id?) where running[id] != nil: running[id]!.signal(SIGTERM)
                case ("start"?, let id?) where ids.contains(id):
                    if running[id] == nil && !hasDirectory(id) {
                        // Its data is gone (a removed node): with an empty log it would forget its
                        // vote, or, as a founder, bootstrap a cluster of its own.
                        Self.say("node \(id) has no directory \(dir)/node\(id) any more; not starting it")
                    } else if running[id] == nil {
                        start(id)
                        Self.say(describe(id))
                    } else {
                        Self.say("node \(id) is running")
                    }
                case ("add"?, let id?) where !ids.contains(id) && !id.isNone:
                    ids.append(id)
                    start(id)
                    let m = member(id)
                    Self.say("""
                        \(describe(id)) (waiting to join). Add it to the cluster:
                          curl -L -X POST -d '{"id": \(id), "raft": "\(m.raftAddress)", "http": "\(m.httpAddress!)"}' http://\(first)/cluster/members
                        """)
                case ("status"?, nil):
                    for id in ids { Self.say("node \(id): \(running[id].map { "running, pid \($0.pid)" } ?? "not running")") }
                case (nil, _): break
                default:
                    Self.say("commands: kill N, stop N, start N (N is one of \(ids.map(\.description).joined(separator: ", ")), a running node for kill and stop), add N (a new id), status")
                }
            }
        }
    }

    /// The ids of the nodes that ran here before: every `nodeN` directory in `dir`, in id order
    /// (none when `dir` does not exist yet).
    static func nodeDirectories(in dir: String) -> [NodeID] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.compactMap { name -> NodeID? in
            guard name.hasPrefix("node"), let raw = UInt64(name.dropFirst(4)), raw != 0, isDirectory("\(dir)/\(name)") else { return nil }
            return NodeID(rawValue: raw)
        }.sorted()
    }

    static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    static func list(_ ids: [NodeID]) -> String { ids.map(\.description).joined(separator: ", ") }

    /// Sends SIGTERM to every node, waits up to ten seconds for each, then kills what is left;
    /// every child is reaped.
    static func stopAll(_ running: [NodeID: ChildProcess], logger: Logger) async {
        for child in running.values { child.signal(SIGTERM) }
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        var left = running
        while !left.isEmpty && ContinuousClock.now < deadline {
            for (id, child) in left {
                if let exit = child.exited() {
                    logger.info("node \(id) \(exit)")
                    left[id] = nil
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for (id, child) in left {
            logger.warning("node \(id) did not stop within 10 s; killing it")
            child.signal(SIGKILL)
            _ = child.waitForExit()
        }
    }

    /// SIGINT and SIGTERM become events (their default action, ending the process at once, is
    /// turned off, so the children are stopped and reaped first).
    static func watchSignals(_ post: AsyncStream<Event>.Continuation) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { post.yield(.signal(number)) }
            source.resume()
            return source
        }
    }

    /// Lines typed on standard input become events, read on a thread of their own (reading
    /// blocks). At the end of the input nothing more is read; the cluster keeps running.
    static func readCommands(_ post: AsyncStream<Event>.Continuation) {
        let thread = Thread {
            while let line = readLine() { post.yield(.command(line.trimmingCharacters(in: .whitespaces))) }
        }
        thread.start()
    }

    /// Prints a line at once (standard output is block-buffered when it is not a terminal, and
    /// whoever reads the addresses must see them while the cluster runs).
    static func say(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// This program's own path, to start the nodes with.
    static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
