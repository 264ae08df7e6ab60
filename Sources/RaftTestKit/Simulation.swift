import Raft

/// Why a simulation failed: the seed, the round, what was violated and the recent events.
public struct SimulationFailure: Error, Sendable, CustomStringConvertible {
    /// The seed that reproduces the failure.
    public var seed: UInt64
    /// Cluster size.
    public var nodes: Int
    /// The round at which the first violation was seen.
    public var round: Int
    /// The violations.
    public var violations: [String]
    /// The last events before the failure.
    public var trace: [String]

    public var description: String {
        """
        simulation failed: seed \(seed), \(nodes) nodes, round \(round)
          \(violations.joined(separator: "\n  "))
        replay: RAFT_SIM_SEED=\(seed) RAFT_SIM_NODES=\(nodes) swift test --filter SimulationTests/replay
        recent events:
          \(trace.joined(separator: "\n  "))
        """
    }
}

extension SimCluster {
    /// Runs one round of the random schedule: deliver due messages in random order, tick every
    /// running node, then maybe propose, crash, restart, re-partition and compact, as the
    /// fault profile says.
    public func runRound() {
        round += 1
        // Deliver what is due, shuffled: reordering within a round on top of the delays.
        var due: [Message] = []
        var keep: [(deliverAt: Int, msg: Message)] = []
        keep.reserveCapacity(queue.count)
        for q in queue { if q.deliverAt <= round { due.append(q.msg) } else { keep.append(q) } }
        queue = keep
        due.shuffle(using: &rng)
        for id in ids where chance(faults.stallRate) { hold(id) }
        for m in due { deliverIfConnected(m) }

        for (i, id) in ids.enumerated() {
            if let rates = tickRates {
                // A slower clock skips a tick now and then.
                tickPhase[i] += rates[i]
                guard tickPhase[i] >= 1 else { continue }
                tickPhase[i] -= 1
            }
            tick(id)
        }

        if chance(faults.proposeRate) {
            let id = ids[Int(rng.next() % UInt64(ids.count))]
            proposed += 1
            let command = nextCommand()
            _ = try? propose(id, [command])
        }
        if chance(faults.crashRate) {
            // Crashes favour stalled disks: that is where undurable state can be lost.
            let stalled = ids.filter { held.contains(slot($0)) }
            let pool = !stalled.isEmpty && chance(0.5) ? stalled : ids
            let id = pool[Int(rng.next() % UInt64(pool.count))]
            crash(id, phase: Int(rng.next() % 5))
        }
        // A stalled disk stays stalled for a few rounds: messages keep arriving, the node keeps
        // deciding, and nothing it decided is durable until the disk catches up.
        for id in ids where held.contains(slot(id)) && chance(0.4) { release(id) }
        for id in ids where !isUp(id) && chance(faults.restartRate) {
            do { try restart(id) } catch { checker.fail("restart: node \(id) could not restart: \(error)") }
        }
        if chance(faults.partitionRate) {
            if partitionGroup.allSatisfy({ $0 == 0 }) {
                var shuffled = ids
                shuffled.shuffle(using: &rng)
                let cut = 1 + Int(rng.next() % UInt64(ids.count - 1))
                partition([Array(shuffled[..<cut])])
            } else {
                heal()
            }
        }
        finishSnapshots()
        for id in ids where chance(faults.compactRate) { beginCompaction(id) }
        if chance(faults.membershipRate) { randomMembershipChange() }
        if chance(faults.transferRate) { randomTransfer() }
    }

    /// Heals the network, restarts every node, turns faults off, and runs until a leader is
    /// elected and a fresh command is applied on every node. Returns the rounds it took, or
    /// `nil` if that did not happen within `maxRounds`.
    public func settle(maxRounds: Int) -> Int? {
        heal()
        faults = SimFaults(proposeRate: 0)
        // A joint membership left by hand is left now, as an operator would.
        if let l = leader, let c = core(l), c.membership.isJoint, !c.membership.autoLeave { _ = try? leaveJoint(l) }
        for id in ids where held.contains(slot(id)) { release(id) }
        for id in ids where !isUp(id) { try? restart(id) }
        let marker = livenessMarker()
        var proposedAt: Int?
        var receipt: ProposalReceipt?
        let start = round
        while round - start < maxRounds {
            runRound()
            // Like a client: propose, and propose again if a leader change lost the command.
            if proposedAt == nil || round - proposedAt! > 40, let l = leader, let r = try? propose(l, [marker]) {
                proposedAt = round
                receipt = r
            }
            // An operator leaves a joint membership left by hand (refused while its entry is
            // not committed yet; asked again next round).
            if let l = leader, let c = core(l), c.membership.isJoint, !c.membership.autoLeave { _ = try? leaveJoint(l) }
            if proposedAt != nil, let l = leader, let lc = core(l), !lc.membershipChangePending {
                // Done once every member of the leader's membership applied the marker (or
                // something after it); removed and spare nodes are not part of the cluster.
                let members = lc.membership.members
                let done = members.allSatisfy { id in
                    let c = core(id)!
                    return c.commitIndex >= c.lastIndex && machine(id).applied == c.lastIndex && (try? c.term(at: c.lastIndex)) != nil
                        && members.allSatisfy { machine($0).hash == machine(id).hash }
                }
                if done && livenessMarkerApplied(marker, receipt) { return round - start }
            }
        }
        return nil
    }

    /// Runs one seeded simulation: `rounds` rounds with the given faults, checking safety
    /// after every batch, then a liveness phase. Throws the first failure with its seed.
    public static func simulate(
        seed: UInt64, nodes: Int, voters: Int? = nil, rounds: Int, faults: SimFaults = .all, livenessRounds: Int = 400,
        configure: (inout RaftConfiguration) -> Void = { _ in },
        disk: @escaping ([NodeID]) -> any SimDisk = { MemoryDisk(voters: $0) }
    ) throws -> SimulationStats {
        let cluster = try SimCluster(nodes: nodes, voters: voters, seed: seed, faults: faults, configure: configure, disk: disk)
        return try cluster.simulate(seed: seed, rounds: rounds, livenessRounds: livenessRounds)
    }

    /// Runs this cluster's simulation (see ``simulate(seed:nodes:rounds:faults:livenessRounds:configure:disk:)``):
    /// `rounds` rounds of the random schedule, then the liveness phase. `seed` is the one the
    /// cluster was made with, for the failure.
    func simulate(seed: UInt64, rounds: Int, livenessRounds: Int) throws(SimulationFailure) -> SimulationStats {
        func failure(_ extra: [String] = []) -> SimulationFailure {
            SimulationFailure(seed: seed, nodes: ids.count, round: round, violations: checker.violations + extra, trace: trace)
        }
        for _ in 0..<rounds {
            runRound()
            if !checker.violations.isEmpty { throw failure() }
        }
        guard let settled = settle(maxRounds: livenessRounds) else {
            throw failure(["liveness: no leader committed a new command on every node within \(livenessRounds) rounds after healing"]
                + ids.map { describeNode($0) } + ids.map { describeMembership($0) })
        }
        if !checker.violations.isEmpty { throw failure() }
        let commit = ids.compactMap { core($0)?.commitIndex }.max() ?? .zero
        return SimulationStats(
            committed: commit, proposed: proposed, settleRounds: settled, membershipChanges: membershipChanges, transfers: transfers)
    }
}

extension SimCluster {
    /// One line describing a node, for failure reports and scenario output.
    public func describeNode(_ id: NodeID) -> String {
        guard let c = core(id) else { return "node \(id): down" }
        let st = c.status()
        var s = "node \(id): \(st.role) term \(st.term) vote \(st.vote) leader \(st.leader) commit \(st.commit) applied \(st.applied) log \(st.firstIndex)...\(st.lastIndex)"
        for m in st.members where m.id != id {
            s += " | \(m.id): match \(m.match) next \(m.next) \(m.state) inflight \(m.inflight)"
        }
        return s
    }
}

extension SimCluster {
    /// One line with the membership a node uses, for failure reports.
    public func describeMembership(_ id: NodeID) -> String {
        guard let c = core(id) else { return "node \(id): down" }
        var s = "node \(id): \(Describe.membership(c.membership)) (entry \(c.membershipIndex)"
        s += c.membershipChangePending ? ", pending)" : ")"
        if !c.leadershipTransferTarget.isNone { s += " transferring to \(c.leadershipTransferTarget)" }
        return s
    }
}

/// What one simulation achieved, to check that a fault profile still makes progress.
public struct SimulationStats: Sendable, Hashable {
    /// The highest commit index reached.
    public var committed: LogIndex
    /// Commands proposed by the random schedule.
    public var proposed: Int
    /// Rounds the liveness phase needed.
    public var settleRounds: Int
    /// Membership changes a leader accepted.
    public var membershipChanges: Int = 0
    /// Leadership transfers a leader started.
    public var transfers: Int = 0
}
