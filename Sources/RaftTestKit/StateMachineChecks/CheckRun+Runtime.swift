@_spi(Testing) import Raft

// The runtime check: the state machine in three real nodes, with restarts, crashes around
// snapshots and a follower catching up by snapshot.
extension CheckRun {
    /// What the cluster scenario did, for the report and the final comparison.
    struct ClusterRun {
        var acknowledged: [(command: [UInt8], result: SM.Result)] = []
        var proposed = 0
        var notes: [String] = []
    }

    static var runtimeFix: String {
        "the state must follow from the committed entries alone: a deterministic apply, snapshots that save exactly the prepared state and restore all of it, an applied index persisted atomically with the data"
    }

    func runtime() async throws(Failure) -> [String] {
        let check = StateMachineCheck.runtime
        let root: String
        do { root = try directory.fresh("cluster") } catch {
            throw Failure(check, "cannot make the cluster's directory: \(error.message)", fix: "give the checks a writable temporary directory")
        }
        let snapshotEvery: UInt64 = 8
        let cluster = CheckCluster<SM>(root: root, seed: checks.options.seed, snapshotEvery: snapshotEvery, make: checks.make)
        var run = ClusterRun()
        do {
            try await scenario(cluster, &run, snapshotEvery: Int(snapshotEvery))
        } catch {
            await cluster.stopAll()
            throw error
        }
        return try await compareReplicas(cluster, run)
    }

    /// Proposals; a follower stopped while the others compact past it, restarted and caught up
    /// by snapshot; a crash at every crash point, each node restarted from its files; the whole
    /// cluster restarted. Ends with every node stopped the orderly way, all at one index, each
    /// having taken a snapshot there.
    func scenario(_ cluster: CheckCluster<SM>, _ run: inout ClusterRun, snapshotEvery: Int) async throws(Failure) {
        let check = StateMachineCheck.runtime
        var commandRandom = SeededGenerator(seed: checks.options.seed ^ 0xC1A5_7E12)
        let rounds = 9
        let perRound = max(3 * snapshotEvery, checks.options.runtimeCommands / rounds)
        func write(_ count: Int) async throws(Failure) {
            for _ in 0..<count {
                let command = checks.commands(&commandRandom)
                run.proposed += 1
                if let result = await cluster.propose(command) { run.acknowledged.append((command, result)) }
                try await recover(cluster)
            }
        }
        /// Ticks until every node applied everything committed. A follower restarted after the
        /// last proposal may learn the commit index only from the next append (heartbeats
        /// commit only what it proved it holds in this term), so a command is proposed between
        /// attempts.
        func converge() async throws(Failure) {
            for attempt in 0..<3 {
                if try await self.converge(cluster, ticks: 60, throwing: attempt == 2) { return }
                try await write(1)
            }
        }
        /// Stops a follower, writes until the leader compacted past it, restarts it and ticks
        /// until it caught up (restarting nodes that crash meanwhile).
        func catchUp() async throws(Failure) {
            guard let leader = await cluster.leader() else { return try await write(1) }
            let followers = cluster.ids.filter { $0 != leader }
            let lagging = followers[Int(random.next() % UInt64(followers.count))]
            let behind = await cluster.status(lagging)?.applied ?? .zero
            await cluster.stop(lagging)
            try await write(perRound)
            for _ in 0..<40 {
                if let l = await cluster.leader(), let s = await cluster.status(l), s.raft.firstIndex > behind + 1 { break }
                await cluster.tick()
            }
            try start(cluster, lagging)
            try await converge()
        }
        try startAll(cluster)
        try await write(perRound)
        try await catchUp()
        let restoresAfterCatchUp = cluster.ids.map { cluster.record.restores(of: $0).count }.reduce(0, +)
        for point in NodeCrashPoint.allCases {
            cluster.crashes.arm(point)
            switch point {
            case .snapshotPrepared, .snapshotSaved, .snapshotRecorded:
                // Any node taking a snapshot reaches these.
                for _ in 0..<perRound where !cluster.crashes.hasFired(point) { try await write(1) }
            case .snapshotReceived, .snapshotPersisted, .stateMachineRecovered:
                // A follower installing the leader's snapshot reaches these.
                try await catchUp()
            }
            try await recover(cluster)
        }
        cluster.crashes.disarm()
        // Crashes between snapshots, the leader's then a follower's: what the state machine
        // applied since its last sync is fed again after the restart.
        for victim in ["leader", "follower"] {
            try await write(perRound / 2)
            guard let leader = await cluster.leader() else { continue }
            let id = victim == "leader" ? leader : cluster.ids.first { $0 != leader } ?? leader
            if let error = await cluster.crash(id) {
                throw Failure(check, "node \(id) stopped with an error: \(error)", fix: Self.nodeErrorFix)
            }
            try start(cluster, id)
            run.notes.append("\(victim) \(id) crashed without a state machine sync")
        }
        try await converge()
        await cluster.stopAll()
        try startAll(cluster)
        try await write(perRound / 2)
        try await converge()
        let fired = cluster.crashes.fired.map { "\($0.0) on node \($0.1)" }
        run.notes.insert(contentsOf: [
            "\(run.proposed) commands proposed, \(run.acknowledged.count) acknowledged",
            "\(restoresAfterCatchUp) snapshot restores after the first catch-up",
            "crashes at: " + (fired.isEmpty ? "none reached" : fired.joined(separator: ", ")),
        ], at: 0)
        for id in cluster.ids {
            guard let node = cluster.nodes[id] else { continue }
            // A request while an automatic snapshot is being saved is answered with that one,
            // which may be behind the last applied index: ask again until it is there.
            do {
                for _ in 0..<5 {
                    let status = try await node.status()
                    if status.snapshotIndex == status.applied { break }
                    _ = try await node.snapshot()
                }
            } catch {
                throw Failure(check, "node \(id) could not take its final snapshot: \(error)", fix: Self.runtimeFix)
            }
        }
        for id in cluster.ids {
            if let error = await cluster.stop(id) {
                throw Failure(check, "node \(id) stopped with an error: \(error)", fix: Self.nodeErrorFix)
            }
        }
    }

    static var nodeErrorFix: String { "see the error; the runtime stops a node whose state machine throws or breaks its applied-index contract" }

    func start(_ cluster: CheckCluster<SM>, _ id: NodeID) throws(Failure) {
        do { try cluster.start(id) } catch {
            throw Failure(.runtime, "node \(id) could not start: \(error)", fix: "the factory and openState must reopen the directory a stopped or crashed node left")
        }
    }

    func startAll(_ cluster: CheckCluster<SM>) throws(Failure) { for id in cluster.ids { try start(cluster, id) } }

    /// Restarts the nodes an injected crash stopped; a node stopped by anything else fails the
    /// check with its error.
    func recover(_ cluster: CheckCluster<SM>) async throws(Failure) {
        let other: [String]
        do { other = try await cluster.restartCrashed() } catch {
            throw Failure(.runtime, "a node could not restart after a crash: \(error)", fix: "the factory and openState must reopen the directory a crashed node left")
        }
        if let first = other.first {
            throw Failure(.runtime, "a node stopped with an error: \(first)", fix: Self.nodeErrorFix)
        }
    }

    /// Ticks until every node applied everything the leader committed; `false` after `ticks`
    /// ticks, or a failure naming where each node is when `throwing`.
    func converge(_ cluster: CheckCluster<SM>, ticks: Int, throwing: Bool) async throws(Failure) -> Bool {
        for _ in 0..<ticks {
            try await recover(cluster)
            if let leader = await cluster.leader(), let target = await cluster.status(leader)?.raft.commit {
                var done = true
                for id in cluster.ids where await cluster.status(id)?.applied != target { done = false }
                if done { return true }
            }
            await cluster.tick()
        }
        guard throwing else { return false }
        var where_: [String] = []
        for id in cluster.ids {
            guard let s = await cluster.status(id) else {
                where_.append("node \(id) stopped")
                continue
            }
            let restoring = s.restoringSnapshot.map { ", restoring snapshot \($0)" } ?? ""
            where_.append("node \(id) (\(s.raft.role), term \(s.raft.term), commit \(s.raft.commit), applied \(s.applied), last \(s.raft.lastIndex)\(restoring))")
        }
        throw Failure(.runtime, "the cluster did not converge (every node applying what the leader committed) in the last \(ticks) ticks: \(where_.joined(separator: ", "))", fix: Self.runtimeFix)
    }
}

extension CrashSwitch {
    /// No crash point is armed any more.
    func disarm() { arm(nil) }
}
