import Foundation
import KVStore
import RaftTestKit

// The end of a run: heal every fault, read every key, check the history, compare the state
// machines, stop every process and judge how each one ended.
extension FaultContext {
    func finish(into report: inout FaultRunReport) async throws {
        try await heal()
        let members = try await settledMembership(.seconds(40))
        await cluster.setMembers(members)
        for (id, _) in await cluster.pids() where !members.contains(id) { await cluster.signal(id, SIGTERM) }
        for id in members where !(await cluster.isRunning(id)) { try await cluster.start(id) }

        // A linearizable read of every key, in the history: every acknowledged write must be
        // visible in it, or the check fails.
        var finalValues: [String: String?] = [:]
        for key in clients.keys { finalValues[key] = try await finalRead(key, members) }

        let history = clients.recorder.history()
        report.operations = history.count
        report.unknownOperations = history.operations.count { $0.completion == nil }
        report.completedWrites = history.operations.count { op in
            if case .get = op.input { return false }
            return op.completion != nil
        }
        let counts = clients.counts
        report.refused = counts.refused + counts.redirects
        report.leaseReads = counts.leaseReads
        report.diskFullAnswers = counts.diskFull
        let started = ContinuousClock.now
        let result = LinearizabilityChecker(model: KVModel(), budget: .time(.seconds(120))).check(history)
        report.linearizable = result.isLinearizable
        report.linearizability = "\(result)"
        report.events.append("linearizability checked in \(started.duration(to: .now).formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")

        try await converge(members, finalValues, into: &report)

        for id in await cluster.pids().keys.sorted() { await cluster.signal(id, SIGTERM, grace: .seconds(15)) }
        await cluster.reap()
        report.findings += clients.findings
        report.findings += await cluster.deaths.filter { !$0.expected }.map(\.description)
    }

    /// Ends every fault still in force and starts every member that is down.
    func heal() async throws {
        await healAll()
        for id in await cluster.pids().keys where await cluster.isPaused(id) { await cluster.signal(id, SIGCONT) }
        for id in await cluster.members { await cluster.freeDisk(id) }
        await cluster.reap()
        for id in await cluster.members where !(await cluster.isRunning(id)) { try await cluster.start(id) }
    }

    /// The members of the leader's committed, non-joint membership, once there is one.
    func settledMembership(_ limit: Duration) async throws -> [Int] {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let known = Set(await cluster.members + (await cluster.pids().keys)).sorted()
            if let leader = await leader(of: known), let roles = await committedRoles(at: leader) {
                let ids = roles.keys.sorted()
                // Start a member the harness did not know of (an addition that finished after
                // its request timed out) before using the list.
                for id in ids where !(await cluster.isRunning(id)) { try await cluster.start(id) }
                return ids
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw FaultRunError("no leader with a settled membership within \(limit) of healing every fault")
    }

    /// A linearizable read of `key` that completes (retried for up to 30 s).
    func finalRead(_ key: String, _ members: [Int]) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(30)
        var attempt = 0
        while ContinuousClock.now < deadline {
            let node = members[attempt % members.count]
            attempt += 1
            if let seen = await clients.perform(client: 10_000, .get(key: key), lease: false, at: node).seen { return seen }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw FaultRunError("the final read of \(key) got no answer within 30 s")
    }

    /// Waits until every member has applied the same log, then compares their data with each
    /// other and with the final reads.
    func converge(_ members: [Int], _ finalValues: [String: String?], into report: inout FaultRunReport) async throws {
        let deadline = ContinuousClock.now + .seconds(40)
        var views: [Int: String] = [:]
        var settled = false
        while ContinuousClock.now < deadline, !settled {
            var marks: [[UInt64]] = []
            views = [:]
            for id in members {
                guard let view = await clusterView(id) else { continue }
                let mark = ["commit", "applied", "lastIndex"].map { (view[$0] as? NSNumber)?.uint64Value ?? 0 }
                marks.append(mark)
                views[id] = "commit \(mark[0]) applied \(mark[1]) last \(mark[2])"
            }
            settled = marks.count == members.count && Set(marks).count == 1 && marks[0][0] == marks[0][1]
            if !settled { try await Task.sleep(for: .milliseconds(200)) }
        }
        guard settled else {
            report.findings.append("the members did not converge within 40 s: \(views.sorted { $0.key < $1.key }.map { "node \($0.key): \($0.value)" }.joined(separator: "; "))")
            return
        }
        var listings: [Int: String] = [:]
        for id in members {
            guard let (status, body) = await admin(.GET, id, "/kv?limit=1000&consistency=stale"), status == 200 else {
                report.findings.append("node \(id) did not list its keys after converging")
                continue
            }
            listings[id] = body
        }
        if Set(listings.values).count > 1 {
            report.findings.append("the state machines differ at the same applied index: " + listings.sorted { $0.key < $1.key }.map { "node \($0.key): \($0.value.prefix(400))" }.joined(separator: " | "))
        }
        if let listing = listings.values.first, let json = try? JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any],
            let entries = json["entries"] as? [[String: Any]]
        {
            let stored = Dictionary(uniqueKeysWithValues: entries.compactMap { e in (e["key"] as? String).map { ($0, e["value"] as? String) } })
            for (key, value) in finalValues where (stored[key] ?? nil) != value {
                report.findings.append("key \(key): the final linearizable read gave \(value ?? "absent"), the state machines hold \((stored[key] ?? nil) ?? "absent")")
            }
        }
        let applied = views.values.first ?? ""
        report.events.append("converged: \(members.count) members at \(applied), \(Set(listings.values).count == 1 ? "identical data" : "data differs")")
    }
}
