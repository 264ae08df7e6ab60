import Foundation
import KVStore

/// The `kvstore serve` processes of a fault run: starting, killing, pausing and restarting
/// them by pid, each node's data directory (on a small tmpfs of its own when the run may fill
/// disks), and what each process's end was.
actor FaultCluster {
    struct Node {
        var process: ChildProcess?
        var paused = false
        /// Started with `--join` (its first start): later starts use the same flag, which an
        /// existing data directory ignores.
        var joined: Bool
        var starts = 0
        var dataDirectory: String
        var tmpfs: Bool
    }

    /// What ended a process, and whether the run caused it.
    struct Death: CustomStringConvertible {
        var node: Int
        var exit: ChildProcess.Exit
        var expected: Bool
        var logTail: String
        var description: String { "node \(node) \(exit)\(expected ? "" : ": unexpected")\n\(logTail)" }
    }

    let kvstore: String
    let directory: String
    let network: FaultNetwork
    let serveArguments: [String]
    let diskBytes: Int?
    /// The run's own cluster id: a process left over from another run is refused by the
    /// handshake, never mixed in.
    let clusterID = "kvfaults-\(UUID().uuidString.prefix(8))"
    private(set) var nodes: [Int: Node] = [:]
    /// The members of the cluster as the run changed it (founders, then additions and removals).
    private(set) var members: [Int]
    /// Deaths seen so far, in order.
    private(set) var deaths: [Death] = []
    /// Nodes whose next exit the run causes (SIGKILL, SIGTERM).
    private var expectingExit: Set<Int> = []
    /// Nodes that did not stop within the grace period of a SIGTERM and were killed.
    private var escalated: Set<Int> = []

    init(kvstore: String, directory: String, network: FaultNetwork, founders: [Int], serveArguments: [String], diskBytes: Int?) {
        self.kvstore = kvstore
        self.directory = directory
        self.network = network
        self.members = founders
        self.serveArguments = serveArguments
        self.diskBytes = diskBytes
    }

    // MARK: Processes

    /// Starts node `id` (its first start creates its data directory, a tmpfs when the run has
    /// disks to fill).
    func start(_ id: Int, join: Bool = false) async throws {
        if nodes[id] == nil {
            let data = "\(directory)/node\(id)"
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            var tmpfs = false
            if let diskBytes {
                try await FaultCommand.run(FaultCommand.find("mount") ?? "/bin/mount", ["-t", "tmpfs", "-o", "size=\(diskBytes)", "tmpfs", data])
                tmpfs = true
            }
            nodes[id] = Node(joined: join, dataDirectory: data, tmpfs: tmpfs)
        }
        guard var node = nodes[id], node.process == nil else { return }
        let peers = (members + [id]).reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }.map(network.member).joined(separator: ",")
        var arguments = ["serve", "--id", "\(id)", "--data-dir", "\(node.dataDirectory)/data", "--peers", peers, "--cluster-id", clusterID]
        if node.joined { arguments.append("--join") }
        arguments += serveArguments
        let (executable, argv) = network.launch(id, kvstore, arguments)
        let log = "\(directory)/node\(id).log"
        appendLine(log, "=== start \(node.starts + 1) of node \(id): \(kvstore) \(arguments.joined(separator: " "))")
        node.process = try ChildProcess(executable: executable, arguments: argv, stdout: .file(log), stderr: .file(log))
        node.paused = false
        node.starts += 1
        nodes[id] = node
    }

    /// Starts node `id` if it is still a member (checked and started in one step, so that a
    /// removal in between cannot be undone).
    func startIfMember(_ id: Int) async throws {
        guard members.contains(id) else { return }
        try await start(id)
    }

    /// Sends `signal` to node `id`'s process; SIGKILL and SIGTERM mark its exit as caused by
    /// the run and wait for it (SIGTERM up to `grace`, then SIGKILL).
    func signal(_ id: Int, _ signal: Int32, grace: Duration = .seconds(10)) async {
        guard let process = nodes[id]?.process else { return }
        switch signal {
        case SIGSTOP:
            process.signal(SIGSTOP)
            nodes[id]?.paused = true
        case SIGCONT:
            process.signal(SIGCONT)
            nodes[id]?.paused = false
        case SIGKILL, SIGTERM:
            expectingExit.insert(id)
            if nodes[id]?.paused == true { process.signal(SIGCONT) }
            process.signal(signal)
            // Wait for this process (not a later one started meanwhile) to be reaped, at most
            // the grace period and then 10 s after a SIGKILL.
            var deadline = ContinuousClock.now + (signal == SIGKILL ? .seconds(10) : grace)
            var killed = signal == SIGKILL
            while nodes[id]?.process === process {
                reap()
                guard nodes[id]?.process === process else { break }
                if ContinuousClock.now > deadline {
                    if killed {
                        appendLine("\(directory)/node\(id).log", "=== node \(id) (pid \(process.pid)) was not reaped 10 s after SIGKILL")
                        break
                    }
                    killed = true
                    escalated.insert(id)
                    process.signal(SIGKILL)
                    deadline = ContinuousClock.now + .seconds(10)
                    appendLine("\(directory)/node\(id).log", "=== the run killed node \(id): it did not stop within \(grace) of signal \(signal)")
                }
                try? await Task.sleep(for: .milliseconds(10))
            }
        default:
            process.signal(signal)
        }
    }

    /// Reaps exited processes and records how each ended.
    @discardableResult
    func reap() -> [Death] {
        var found: [Death] = []
        for (id, node) in nodes {
            guard let process = node.process, let exit = process.exited() else { continue }
            let caused = expectingExit.remove(id) != nil
            let tail = logTail(id)
            let expected: Bool
            if caused {
                // SIGKILL, or SIGTERM answered by an orderly stop (status 0), or a SIGTERM that
                // came before the process installed its handler (it was just starting).
                expected = escalated.remove(id) == nil && (exit == .signalled(SIGKILL) || exit == .exited(0) || exit == .signalled(SIGTERM))
            } else {
                // A node rides out a full disk without exiting: an exit is never expected.
                expected = false
            }
            let death = Death(node: id, exit: exit, expected: expected, logTail: tail)
            found.append(death)
            deaths.append(death)
            nodes[id]?.process = nil
            nodes[id]?.paused = false
        }
        return found
    }

    /// Whether node `id` has a running (or paused) process.
    func isRunning(_ id: Int) -> Bool { nodes[id]?.process != nil }
    /// Whether node `id` is paused.
    func isPaused(_ id: Int) -> Bool { nodes[id]?.paused == true }
    /// Process ids of every running node.
    func pids() -> [Int: pid_t] { nodes.compactMapValues { $0.process?.pid } }

    /// Changes the run's view of the members.
    func setMembers(_ ids: [Int]) { members = ids }

    // MARK: Disks

    /// Fills node `id`'s tmpfs with a file until writes fail with ENOSPC; returns the bytes
    /// written. The node should ride it out without exiting: an exit meanwhile is a finding.
    func fillDisk(_ id: Int) throws -> Int {
        guard let node = nodes[id], node.tmpfs else { return 0 }
        let path = "\(node.dataDirectory)/filler"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FaultRunError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
        var written = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            written += n
        }
        return written
    }

    /// Removes node `id`'s filler file: its disk has room again.
    func freeDisk(_ id: Int) {
        guard let node = nodes[id] else { return }
        try? FileManager.default.removeItem(atPath: "\(node.dataDirectory)/filler")
    }


    // MARK: Teardown

    /// Stops every process (SIGTERM, SIGKILL past the grace period), unmounts the disks and
    /// removes the data.
    func tearDown(keepData: Bool) async {
        for id in nodes.keys.sorted() {
            if nodes[id]?.paused == true { nodes[id]?.process?.signal(SIGCONT) }
            if nodes[id]?.process != nil { await signal(id, SIGKILL) }
        }
        for (id, node) in nodes where node.tmpfs {
            // Unmounting a tmpfs discards it: a kept run copies the data off first.
            if keepData { _ = try? await FaultCommand.run(FaultCommand.find("cp") ?? "/bin/cp", ["-a", "\(node.dataDirectory)/data", "\(directory)/node\(id)-data"]) }
            _ = try? await FaultCommand.run(FaultCommand.find("umount") ?? "/bin/umount", [node.dataDirectory])
        }
        if !keepData { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// The last lines of node `id`'s log.
    func logTail(_ id: Int, lines: Int = 12) -> String {
        let text = (try? String(contentsOfFile: "\(directory)/node\(id).log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    private func appendLine(_ path: String, _ line: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
