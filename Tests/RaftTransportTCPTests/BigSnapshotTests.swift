import Foundation
import Raft
import RaftTransportTCP
import Testing

/// The resident memory of this process (VmRSS in /proc/self/status), Linux only.
enum ResidentMemory {
    static var available: Bool { bytes() != nil }

    static func bytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kB = Int(line.dropFirst("VmRSS:".count).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        else { return nil }
        return kB << 10
    }

    /// Samples the resident memory every 10 ms until cancelled; returns the highest seen.
    static func peak() -> Task<Int, Never> {
        Task {
            var peak = bytes() ?? 0
            while !Task.isCancelled {
                peak = max(peak, bytes() ?? 0)
                try? await Task.sleep(for: .milliseconds(10))
            }
            return max(peak, bytes() ?? 0)
        }
    }
}

/// A snapshot far larger than anything the node or the transport holds in memory (chunks of
/// 512 KiB, four in flight) crosses TCP and installs, and the process's resident memory does not
/// grow by anything near its size: it is streamed from the leader's snapshot file to the
/// follower's, and recovered from that file as a stream.
///
/// Alone it takes about 12 s in debug. Beside the whole parallel suite on two cores it waits for
/// the cooperative pool and finishes with the suite (about two minutes), hence its time limit;
/// the other suites' allocations also show in the process's resident memory then (+63 MiB seen
/// against the bound of 96 MiB, +27 MiB alone).
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: ResidentMemory.available, "needs /proc/self/status"))
struct BigSnapshotTests {
    static let filler = 192 << 20

    @Test func largeSnapshotStreamsWithoutGrowingResidentMemory() async throws {
        let baseline = ResidentMemory.bytes() ?? 0
        let peak = ResidentMemory.peak()
        let started = ContinuousClock.now
        let cluster = try await TCPCluster(journalPadding: Self.filler, tuneNode: {
            $0.snapshotEvery = 10
            $0.compactionTrail = 2
            // Elections only if something is really wrong: under a loaded CI machine a new
            // leader whose snapshot is not done yet would catch the follower up from its log.
            $0.tickInterval = .milliseconds(50)
        })
        do {
            // Two nodes take a snapshot of 192 MiB while the third is down; it comes back and
            // catches up by that snapshot, over the snapshots lane.
            let (_, follower, expected) = try await cluster.lagOneFollower(prefix: "big-", batches: 1, perBatch: 12, snapshotAt: 10, within: .seconds(30))
            // Both running nodes have snapshotted and compacted, so whichever leads when the
            // follower is back can only catch it up by the snapshot.
            try await eventually(.seconds(30), "both running nodes snapshotting") {
                for id in cluster.ids where id != follower {
                    if (await cluster.status(id)?.snapshotIndex ?? .zero) < 10 { return false }
                }
                return true
            }
            let snapshotMade = ContinuousClock.now
            try await cluster.restart(follower)
            try await cluster.waitForAll(expected, within: .seconds(60))
            let installed = ContinuousClock.now
            peak.cancel()
            let highest = await peak.value
            #expect(cluster.views[follower]!.recoveredFiller == [Self.filler], "the follower recovered the whole filler once")
            let chunks = cluster.ids.filter { $0 != follower }.reduce(0) {
                $0 + cluster.counter("raft_tcp_frames_in_total", node: follower, peer: $1, lane: "snapshots")
            }
            #expect(chunks >= Int64(Self.filler / (512 << 10)), "the snapshot came in chunks")
            let growth = highest - baseline
            print("large snapshot over TCP: \(Self.filler >> 20) MiB of filler; resident memory \(baseline >> 20) MiB before, \(highest >> 20) MiB at most (+\(growth >> 20) MiB); snapshots made in \(snapshotMade - started), caught up in \(installed - snapshotMade)")
            #expect(growth < Self.filler / 2, "resident memory grew by \(growth >> 20) MiB for a \(Self.filler >> 20) MiB snapshot")
        } catch {
            peak.cancel()
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
