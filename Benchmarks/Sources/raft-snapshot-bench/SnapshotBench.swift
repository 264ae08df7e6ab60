// A large snapshot sent between two processes over TCP: MB/s and the peak resident memory of
// both.
//
// This process runs nodes 1 and 2 of a three-voter cluster (TCPTransport on 127.0.0.1, file
// storage with fsync), whose state machine carries --mib MiB of filler in every snapshot. They
// commit a dozen commands and each takes a snapshot (filler included) and compacts its log. Then
// it starts a second process, itself with --follower-of, running node 3 on an empty disk: the
// leader can only catch it up by streaming the snapshot, chunk by chunk from its snapshot file
// to the follower's, where the state machine recovers from it as a stream (and checks every
// byte). The time from telling the leader where node 3 listens to node 3 reporting the recovery
// gives the rate; each process reports its resident memory (VmRSS sampled, and VmHWM).

import ArgumentParser
import BenchSupport
import Foundation
import Raft
import RaftTransportTCP

/// The command-line options (`--help` prints them with their defaults).
struct Options: ParsableArguments {
    @Option(name: .customLong("mib"), help: ArgumentHelp("Filler in the snapshot, in MiB.", valueName: "n"))
    var mib = 1024

    @Option(name: .customLong("chunk-kib"), help: ArgumentHelp("RaftNodeConfiguration.snapshotChunkBytes, in KiB.", valueName: "n"))
    var chunkKiB = 512

    @Option(name: .customLong("in-flight"), help: ArgumentHelp("RaftNodeConfiguration.snapshotChunksInFlight.", valueName: "n"))
    var inFlight = 4

    @Option(name: .customLong("dir"), help: ArgumentHelp("Where the temporary directories go.", valueName: "path"))
    var dir = "/tmp"

    @Option(name: .customLong("follower-of"), help: .hidden)
    var followerOf: String?

    @Option(name: .customLong("follower-dir"), help: .hidden)
    var followerDir: String?

    func validate() throws {
        try require(mib >= 1, "--mib must be at least 1")
        try require(chunkKiB >= 1 && chunkKiB <= 8 << 10, "--chunk-kib must be between 1 and 8192")
        try require(inFlight >= 1, "--in-flight must be at least 1")
    }

    var filler: Int { mib << 20 }

    func nodeConfiguration(_ id: NodeID) -> RaftNodeConfiguration {
        var c = RaftNodeConfiguration(id: id)
        c.tickInterval = .milliseconds(50)
        c.snapshotEvery = 10
        c.compactionTrail = 2
        c.snapshotChunkBytes = chunkKiB << 10
        c.snapshotChunksInFlight = inFlight
        return c
    }
}

let voters: [NodeID] = [1, 2, 3]

func address(_ port: Int) -> PeerAddress { PeerAddress(host: "127.0.0.1", port: port) }

func seconds(_ d: Duration) -> Double {
    let (s, atto) = d.components
    return Double(s) + Double(atto) / 1e18
}

/// Polls `condition` every 10 ms for at most `limit`; `false` if it never held.
func waitFor(_ limit: Duration, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return false
}

/// Samples VmRSS every 10 ms until cancelled; returns the highest seen.
func sampleResidentPeak() -> Task<Int, Never> {
    Task {
        var peak = residentMemory().now
        while !Task.isCancelled {
            peak = max(peak, residentMemory().now)
            try? await Task.sleep(for: .milliseconds(10))
        }
        return max(peak, residentMemory().now)
    }
}

func mib(_ bytes: Int) -> String { fixed(Double(bytes) / Double(1 << 20), 1) + " MiB" }

@main struct SnapshotBench {
    static func main() async {
        let options = Options.parseOrExit()
        do {
            if let ports = options.followerOf {
                try await runFollower(options, leaderPorts: ports.split(separator: ",").compactMap { Int($0) })
            } else {
                exit(try await runLeaders(options) ? 0 : 3)
            }
        } catch {
            print("raft-snapshot-bench: \(error)")
            exit(1)
        }
    }
}
