import Raft
import RaftTransportTCP
import Testing

/// Three real nodes over TCP on 127.0.0.1, in real time. Every wait is bounded; every test
/// stops what it started.
@Suite(.serialized, .timeLimit(.minutes(2))) struct TCPClusterTests {
    @Test func electsReplicatesAndSurvivesARestart() async throws {
        let cluster = try await TCPCluster()
        do {
            try cluster.startAll()
            let first = try await cluster.leader()
            var expected = try await cluster.proposeMany("a", 20)
            try await cluster.waitForAll(expected)

            // The leader stops: the other two elect a new one and go on.
            try await cluster.stop(first)
            let second = try await cluster.leader()
            #expect(second != first)
            expected += try await cluster.proposeMany("b", 10)
            try await cluster.waitForAll(expected)

            // It comes back on the same port and catches up; the cluster takes writes from all.
            try await cluster.restart(first)
            try await cluster.waitForAll(expected)
            expected += try await cluster.proposeMany("c", 5)
            try await cluster.waitForAll(expected)
            // Frames and bytes went both ways between the leader and the others.
            let l = try await cluster.leader()
            for f in cluster.ids where f != l {
                #expect(cluster.counter("raft_tcp_frames_out_total", node: l, peer: f) > 0)
                #expect(cluster.counter("raft_tcp_bytes_in_total", node: f, peer: l) > 0)
            }
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A follower down for a while: the leader's transport reports it unreachable (the leader
    /// moves it to probing), its queue stays within its bound and drops are counted; once the
    /// follower is back it catches up.
    @Test func unreachableFollowerIsProbedWithBoundedQueueThenCatchesUp() async throws {
        let cluster = try await TCPCluster { $0.maxQueuedMessages = 16 }
        do {
            try cluster.startAll()
            let leader = try await cluster.leader()
            var expected = try await cluster.proposeMany("x", 5)
            try await cluster.waitForAll(expected)
            let follower = cluster.ids.first { $0 != leader }!
            let replicating = await cluster.status(leader)?.raft.members.first(where: { $0.id == follower })?.state
            #expect(replicating == .replicate)

            try await cluster.stop(follower)
            // The leader keeps committing with the other follower meanwhile.
            expected += try await cluster.proposeMany("y", 10)
            try await eventually(.seconds(10), "the leader probing the stopped follower") {
                await cluster.status(leader)?.raft.members.first(where: { $0.id == follower })?.state == .probe
            }
            try await eventually(.seconds(10), "drops counted for the stopped follower") {
                cluster.counter("raft_tcp_dropped_messages_total", node: leader, peer: follower) > 0
            }
            #expect(cluster.counter("raft_tcp_reconnects_total", node: leader, peer: follower) > 0)

            try await cluster.restart(follower)
            try await cluster.waitForAll(expected)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// A follower that missed compacted entries catches up by a snapshot streamed in chunks on
    /// the snapshots lane, while heartbeats and appends use the messages lane.
    @Test func laggingFollowerCatchesUpBySnapshotOnItsOwnLane() async throws {
        let cluster = try await TCPCluster(tuneNode: {
            $0.snapshotEvery = 10
            $0.compactionTrail = 2
            $0.snapshotChunkBytes = 64
        })
        do {
            let (leader, follower, expected) = try await cluster.lagOneFollower(
                prefix: "snapshot-me-" + String(repeating: "z", count: 20), batches: 2, perBatch: 20, snapshotAt: 20)
            try await cluster.restart(follower)
            try await cluster.waitForAll(expected)
            // Whoever led by then (leadership may have moved) streamed the chunks on the
            // snapshots lane; nothing but chunks travels there.
            let others = cluster.ids.filter { $0 != follower }
            let chunksIn = others.reduce(0) { $0 + cluster.counter("raft_tcp_frames_in_total", node: follower, peer: $1, lane: "snapshots") }
            let chunksOut = others.reduce(0) { $0 + cluster.counter("raft_tcp_frames_out_total", node: $1, peer: follower, lane: "snapshots") }
            #expect(chunksIn > 1)
            #expect(chunksOut >= chunksIn)
            #expect(cluster.counter("raft_tcp_frames_in_total", node: follower, peer: leader, lane: "messages") > 0)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    /// The connections between the leader and a follower are cut while a snapshot streams to
    /// it (the leader drops the follower from its peers for a moment, closing both lanes): the
    /// transfer resumes or restarts over new connections and completes.
    @Test func snapshotTransferSurvivesACutConnection() async throws {
        let cluster = try await TCPCluster(tuneNode: {
            $0.snapshotEvery = 50
            $0.compactionTrail = 2
            $0.snapshotChunkBytes = 16
        })
        do {
            let (_, follower, expected) = try await cluster.lagOneFollower(
                prefix: "cut-" + String(repeating: "q", count: 40), batches: 10, perBatch: 20, snapshotAt: 150)
            try await cluster.restart(follower)
            // The sender is whoever leads once the follower is back: on a loaded machine an
            // election may have moved leadership since the log was written.
            let others = cluster.ids.filter { $0 != follower }
            @Sendable func chunks(_ from: NodeID) -> Int64 { cluster.counter("raft_tcp_frames_out_total", node: from, peer: follower, lane: "snapshots") }
            do {
                try await eventually(.seconds(30), "the transfer under way") { others.contains { chunks($0) >= 20 } }
            } catch {
                var seen: [String] = []
                for id in cluster.ids { seen.append("node \(id): \(chunks(id)) chunks out, \(String(describing: await cluster.status(id)))") }
                throw RaftError(.timeout, "\(error); " + seen.joined(separator: "; "))
            }
            let sender = others.max { chunks($0) < chunks($1) }!
            let atCut = chunks(sender)
            let everyone = cluster.peers(of: sender)
            cluster.transports[sender]!.setPeers(everyone.filter { $0.key != follower })
            try await Task.sleep(for: .milliseconds(100))
            cluster.transports[sender]!.setPeers(everyone)
            try await cluster.waitForAll(expected, within: .seconds(60))
            // The cut came in the middle: a 10 KB snapshot in 16-byte chunks takes hundreds.
            #expect(atCut < 300)
            #expect(others.reduce(0) { $0 + chunks($1) } > atCut)
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }
}
