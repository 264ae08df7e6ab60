import Raft

// The end of the runtime check: every replica against a fresh instance fed the committed log
// once.
extension CheckRun {
    func compareReplicas(_ cluster: CheckCluster<SM>, _ run: ClusterRun) async throws(Failure) -> [String] {
        let check = StateMachineCheck.runtime
        let record = cluster.record.state.withLock { $0 }
        if let disagreement = record.disagreement {
            throw Failure(check, "two nodes applied different entries at one index: \(disagreement)", fix: "none in the state machine: this breaks Raft's state machine safety; report it to the library with the seed")
        }
        let top = record.log.keys.max() ?? .zero
        var log: [LogEntry] = []
        for raw in 1...max(1, top.rawValue) where top > .zero {
            guard let entry = record.log[LogIndex(rawValue: raw)] else {
                throw Failure(check, at: LogIndex(rawValue: raw), "no node was given entry \(raw) to apply", fix: "none in the state machine: report it to the library with the seed")
            }
            log.append(entry)
        }
        let finalMetadata = Self.metadata(at: top, term: log.last?.term ?? .zero)
        // The reference: a fresh instance fed the committed log once, in batches.
        let (reference, _) = try fresh("runtime-reference", check)
        var expected: [Int: SM.Result] = [:]
        var next = 0
        while next < log.count {
            let end = min(log.count, next + 16)
            for r in try feed(reference, log[next..<end], check) { expected[r.index] = r.result }
            next = end
        }
        let state = try image(of: reference, finalMetadata, check)
        for id in cluster.ids {
            let held = try finalState(of: id, cluster, finalMetadata, check)
            if held != state {
                throw Failure(
                    check, at: top,
                    "node \(id) ends at index \(top) with another state than a fresh instance fed the committed log 1...\(top) once (\(held.difference(from: state))); it restored snapshots at \(cluster.record.restores(of: id))",
                    fix: Self.runtimeFix)
            }
        }
        for id in cluster.ids {
            for (index, result) in (record.results[id] ?? [:]).sorted(by: { $0.key < $1.key }) {
                guard let wanted = expected[Int(index.rawValue)], !checks.resultsMatch(result, wanted) else { continue }
                throw Failure(
                    check, at: index, "node \(id) gave \(describe(result)) for entry \(index), a fresh instance fed the committed log once gives \(describe(wanted))",
                    fix: Self.runtimeFix)
            }
        }
        // Every acknowledged command is an entry of the log whose result is the one its proposer got.
        var unclaimed: [[UInt8]: [Int]] = [:]
        for e in log where e.kind == .command { unclaimed[e.data, default: []].append(Int(e.index.rawValue)) }
        for (command, result) in run.acknowledged {
            let candidates = unclaimed[command] ?? []
            guard let k = candidates.firstIndex(where: { expected[$0].map { checks.resultsMatch(result, $0) } ?? false }) else {
                throw Failure(
                    check, "the command \(Describe.data(command)) was acknowledged with \(describe(result)), but no entry of the committed log holding it gives that result",
                    fix: Self.runtimeFix)
            }
            unclaimed[command]?.remove(at: k)
        }
        var notes = run.notes
        notes.append("every replica holds the reference's state at index \(top); \(run.acknowledged.count) acknowledged results matched")
        return notes
    }

    /// What node `id` holds once stopped: its last snapshot (taken at the final index)
    /// recovered into a fresh instance; for an on-disk state machine, also its own directory
    /// reopened, which must hold the same.
    func finalState(of id: NodeID, _ cluster: CheckCluster<SM>, _ metadata: SnapshotMetadata, _ check: StateMachineCheck) throws(Failure) -> StateImage {
        let fromSnapshot: StateImage
        do {
            let storage = try FileLogStorage(directory: "\(cluster.root)/node-\(id)/raft")
            defer { storage.close() }
            let saved = storage.snapshotMetadata()
            guard saved.index == metadata.index else {
                throw Failure(check, at: saved.index, "node \(id)'s last snapshot is at index \(saved.index), not at the final index \(metadata.index)", fix: Self.runtimeFix)
            }
            let input = try storage.openSnapshot()
            let (machine, _) = try fresh("runtime-node-\(id)-snapshot", check)
            try recover(machine, from: input, saved, check)
            fromSnapshot = try image(of: machine, saved, check)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(check, "reading node \(id)'s last snapshot failed: \(error)", fix: Self.runtimeFix)
        }
        guard onDisk == true else { return fromSnapshot }
        let (machine, held) = try reopen("\(cluster.root)/node-\(id)/state", check, what: "node \(id)'s state after an orderly stop")
        if held != metadata.index {
            throw Failure(
                check, at: metadata.index, "node \(id)'s state reopened after an orderly stop at index \(held.map { "\($0)" } ?? "nil"), not \(metadata.index), the last it applied",
                fix: "sync (called on an orderly stop) must make the applied index and the data durable, and openState must return that index")
        }
        let durable = try image(of: machine, metadata, check)
        if durable != fromSnapshot {
            throw Failure(
                check, at: metadata.index, "node \(id)'s durable state at index \(metadata.index) differs from its own snapshot of that index: \(durable.difference(from: fromSnapshot))",
                fix: Self.atomicFix)
        }
        return durable
    }
}
