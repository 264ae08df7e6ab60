// Proposals: registering them, their deadlines, and answering them as entries apply.
extension NodeLoop {
    /// Appends all proposals of one loop batch as one append (each caller's commands stay
    /// together, in order). Throws only a storage failure, which stops the node; refusals
    /// answer the proposals.
    func propose(_ batch: [RaftNode<SM>.Proposal]) throws(RaftError) {
        guard !batch.isEmpty else { return }
        var commands: [[UInt8]] = []
        if batch.count == 1 {
            commands = batch[0].commands
        } else {
            commands.reserveCapacity(batch.count)
            for p in batch { commands += p.commands }
        }
        do {
            guard let receipt = try core.propose(commands: commands) else {
                var refusal = RaftError(.notLeader, "node \(node.id) is not the leader", leaderHint: core.leader)
                refusal.leaderAddress = node.configuration.clientAddresses[core.leader]
                for p in batch { p.reply.fail(refusal) }
                return
            }
            register(batch, from: receipt)
        } catch {
            if core.storageFailure != nil {
                for p in batch { p.reply.fail(error) }
                throw error
            }
            if error.code == .uncommittedLimitExceeded && batch.count > 1 {
                // The limit is judged per caller: admit proposals in order while they fit, so
                // one large batch does not refuse the small ones beside it.
                for p in batch { try propose([p]) }
                return
            }
            var refusal = error
            if refusal.code == .notLeader, let leader = refusal.leaderHint {
                refusal.leaderAddress = node.configuration.clientAddresses[leader]
            }
            for p in batch { p.reply.fail(refusal) }
        }
    }

    /// Records where the entries of `batch` went, one pending answer per entry.
    func register(_ batch: [RaftNode<SM>.Proposal], from receipt: ProposalReceipt) {
        var index = receipt.firstIndex
        let now = ContinuousClock.now
        for p in batch {
            for answer in p.reply.answers(count: p.commands.count) {
                if let replaced = pending.removeValue(forKey: index) {
                    // An older proposal at this index was lost when another leader overwrote it.
                    replaced.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(index) was replaced after a leader change; its outcome is unknown"))
                }
                pending[index] = Pending(
                    term: receipt.term, token: p.token, continuation: answer,
                    deadline: ticks + node.configuration.proposalTimeoutTicks, started: now)
                index = index + 1
            }
        }
    }

    func expireProposals() {
        for (index, p) in pending where p.deadline <= ticks {
            pending[index] = nil
            p.continuation.resume(throwing: RaftError(.timeout, "proposal at index \(index) got no result within \(node.configuration.proposalTimeoutTicks) ticks; it may still be committed"))
        }
    }

    /// Applies committed entries and answers their proposers.
    func apply(_ entries: ArraySlice<LogEntry>) throws(RaftError) {
        guard !entries.isEmpty else { return }
        let fresh = try admitted(entries)
        guard let last = fresh.last else { return }
        let results: [SM.Result]
        do {
            results = try stateMachine.apply(fresh)
        } catch {
            throw RaftError.stateMachine("node \(node.id): applying entries \(fresh.first!.index)...\(last.index)", error)
        }
        var commands = 0
        for e in fresh where e.kind == .command { commands += 1 }
        guard results.count == commands else {
            throw RaftError(
                .stateMachine,
                "node \(node.id): the state machine returned \(results.count) results for entries \(fresh.first!.index)...\(last.index), which hold \(commands) commands: return one result per command entry (none for no-ops)")
        }
        applied.applied(through: last)
        if let reported = stateMachine.reportedAppliedIndex {
            try verified(reported, after: "applying entries \(fresh.first!.index)...\(last.index)")
        }
        // Reads waiting for these entries see the whole batch, never part of it.
        serveReads()
        var k = results.startIndex
        for e in fresh {
            let r: SM.Result?
            if e.kind == .command {
                r = results[k]
                k += 1
            } else {
                r = nil
            }
            guard !pending.isEmpty, let p = pending.removeValue(forKey: e.index) else { continue }
            if e.term == p.term, let r {
                metrics.proposalLatency.recordNanoseconds(Int64((ContinuousClock.now - p.started) / .nanoseconds(1)))
                p.continuation.resume(returning: r)
            } else {
                p.continuation.resume(throwing: RaftError(.proposalDropped, "proposal at index \(e.index) was replaced after a leader change"))
            }
        }
    }

    func verified(_ reported: LogIndex, after operation: String) throws(RaftError) {
        do { try applied.verify(reported: reported, after: operation) } catch { throw error.on(node.id) }
    }
}

extension RaftError {
    /// The error a node stops with when its state machine threw `error` while `doing`: code
    /// ``Code/stateMachine``, except for a full disk, which keeps ``Code/noSpace`` so that a
    /// service can tell it apart, wait for space and start the node again.
    static func stateMachine(_ doing: String, _ error: any Error, file: String = #fileID, line: Int = #line) -> RaftError {
        let code: Code = (error as? RaftError)?.code == .noSpace ? .noSpace : .stateMachine
        return RaftError(code, "\(doing) failed: \(error)", file: file, line: line)
    }
}
