import BenchSupport
import Foundation
import Raft
import RaftTransportTCP

typealias Node = RaftNode<FillerMachine>

extension SnapshotBench {
    /// Nodes 1 and 2 here, node 3 in a child process; prints the figures. Returns whether the
    /// issue's targets were met (at least 200 MB/s, under 100 MiB resident in each process).
    static func runLeaders(_ options: Options) async throws -> Bool {
        let root = makeTemporaryDirectory(in: options.dir, for: "raft-snapshot-bench")
        defer { removeTree(root) }
        print("raft-snapshot-bench: a snapshot with \(options.mib) MiB of filler, chunks of \(options.chunkKiB) KiB, \(options.inFlight) in flight; files under \(root)")
        let before = residentMemory()
        var transports: [NodeID: TCPTransport] = [:]
        var ports: [NodeID: Int] = [:]
        var runs: [Task<Void, any Error>] = []
        for id in [1, 2] as [NodeID] {
            let t = try TCPTransport(configuration: TCPTransportConfiguration(clusterID: "raft-snapshot-bench", nodeID: id, listenAddress: address(0), peers: [:]))
            ports[id] = try await t.listen()
            transports[id] = t
            runs.append(Task { try await t.run() })
        }
        transports[1]!.setPeers([2: address(ports[2]!)])
        transports[2]!.setPeers([1: address(ports[1]!)])
        var nodes: [NodeID: Node] = [:]
        for id in [1, 2] as [NodeID] {
            let node = try Node(
                configuration: options.nodeConfiguration(id), storage: try FileLogStorage(directory: "\(root)/node\(id)", voters: voters),
                stateMachine: FillerMachine(filler: options.filler, recovered: Recovered()), transport: transports[id]!)
            transports[id]!.setReceiver { node.receive($0) }
            nodes[id] = node
            runs.append(Task { try await node.run() })
        }
        defer {
            for n in nodes.values { n.stop() }
        }
        let clock = ContinuousClock()
        let started = clock.now
        try await nodes[1]!.campaign()
        guard await waitFor(.seconds(15), { (try? await nodes[1]!.status())?.raft.role == .leader }) else {
            throw RaftError(.timeout, "node 1 did not become leader within 15 s")
        }
        for i in 0..<12 { _ = try await nodes[1]!.propose(Array("command \(i)".utf8)) }
        guard await waitFor(.seconds(600), { ((try? await nodes[1]!.status())?.snapshotIndex ?? .zero) >= 10 }) else {
            throw RaftError(.timeout, "node 1 took no snapshot within 10 minutes")
        }
        let snapshotted = clock.now
        let beforeTransfer = residentMemory()
        print("snapshot taken by nodes 1 and 2 in \(fixed(seconds(snapshotted - started), 2)) s; this process: \(mib(before.now)) resident at start, \(mib(beforeTransfer.now)) now, \(mib(beforeTransfer.peak)) at most so far")

        // Node 3, in a process of its own, on an empty disk.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        child.arguments = [
            "--follower-of", "\(ports[1]!),\(ports[2]!)", "--follower-dir", "\(root)/node3", "--mib", "\(options.mib)",
            "--chunk-kib", "\(options.chunkKiB)", "--in-flight", "\(options.inFlight)",
        ]
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        let fd = output.fileHandleForReading.fileDescriptor
        guard let portLine = await readLine(fd), portLine.hasPrefix("port "), let port3 = Int(portLine.dropFirst(5)) else {
            child.terminate()
            throw RaftError(.io, "the follower process did not say its port")
        }
        let peak = sampleResidentPeak()
        let sent = clock.now
        transports[1]!.setPeers([2: address(ports[2]!), 3: address(port3)])
        transports[2]!.setPeers([1: address(ports[1]!), 3: address(port3)])
        let report = await readLine(fd)
        let installed = clock.now
        peak.cancel()
        let leaderPeak = await peak.value
        child.waitUntilExit()
        // "installed BYTES rss NOW hwm PEAK"
        guard let fields = report?.split(separator: " "), fields.count == 6, fields[0] == "installed", let bytes = Int(fields[1]),
            let followerRSS = Int(fields[3]), let followerHWM = Int(fields[5])
        else { throw RaftError(.io, "the follower process ended without installing the snapshot (it said: \(report ?? "nothing"))") }
        guard bytes == options.filler else { throw RaftError(.corruption, "the follower recovered \(bytes) bytes of filler, not \(options.filler)") }
        let after = residentMemory()
        let rate = Double(options.filler) / seconds(installed - sent) / 1e6
        let wire = transports.values.reduce(0) { $0 + $1.statistics.bytesOut }
        print("snapshot streamed to node 3 and recovered there in \(fixed(seconds(installed - sent), 2)) s: \(fixed(rate, 0)) MB/s (filler bytes / time), \(mib(Int(wire))) written by nodes 1 and 2 in all")
        print("resident memory, leaders' process (nodes 1, 2): \(mib(beforeTransfer.now)) before the transfer, \(mib(leaderPeak)) at most during it (sampled every 10 ms), VmHWM \(mib(after.peak)) over the whole run")
        print("resident memory, follower's process (node 3): \(mib(followerRSS)) after installing, VmHWM \(mib(followerHWM))")
        let rateMet = rate >= 200
        let memoryMet = leaderPeak < 100 << 20 && followerHWM < 100 << 20
        print("target: at least 200 MB/s -> \(rateMet ? "MET" : "MISSED"); under 100 MiB resident in each process during the transfer -> \(memoryMet ? "MET" : "MISSED")")
        for n in nodes.values { n.stop() }
        for t in transports.values { await t.shutdown() }
        for r in runs { _ = await r.result }
        nodes = [:]
        return rateMet && memoryMet
    }

    /// Node 3: says its port, catches up, says what it recovered and its memory, stops.
    static func runFollower(_ options: Options, leaderPorts: [Int]) async throws {
        guard leaderPorts.count == 2, let directory = options.followerDir else { throw RaftError(.invalidArgument, "--follower-of wants two ports and --follower-dir") }
        let t = try TCPTransport(
            configuration: TCPTransportConfiguration(
                clusterID: "raft-snapshot-bench", nodeID: 3, listenAddress: address(0), peers: [1: address(leaderPorts[0]), 2: address(leaderPorts[1])]))
        let port = try await t.listen()
        let transportRun = Task { try await t.run() }
        let recovered = Recovered()
        let node = try Node(
            configuration: options.nodeConfiguration(3), storage: try FileLogStorage(directory: directory, voters: voters),
            stateMachine: FillerMachine(filler: options.filler, recovered: recovered), transport: t)
        t.setReceiver { node.receive($0) }
        let nodeRun = Task { try await node.run() }
        say("port \(port)")
        let done = await waitFor(.seconds(600)) { recovered.value >= 0 }
        let memory = residentMemory()
        say(done ? "installed \(recovered.value) rss \(memory.now) hwm \(memory.peak)" : "timeout")
        node.stop()
        _ = await nodeRun.result
        await t.shutdown()
        _ = await transportRun.result
    }

    /// Prints a line for the parent process, at once.
    static func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    /// Reads one line from `fd` on a thread of its own (the read blocks); `nil` at the end.
    static func readLine(_ fd: Int32) async -> String? {
        await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            Thread.detachNewThread {
                var bytes: [UInt8] = []
                var byte: UInt8 = 0
                while read(fd, &byte, 1) == 1 {
                    if byte == UInt8(ascii: "\n") { return c.resume(returning: String(decoding: bytes, as: UTF8.self)) }
                    bytes.append(byte)
                }
                c.resume(returning: bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self))
            }
        }
    }
}
