import AsyncHTTPClient
import Foundation
import KVStore
import NIOCore
import NIOHTTP1
import Synchronization

/// The parts of one fault run, shared by its tasks: the nemesis, the membership change, the
/// full disk, the clients and the final checks.
final class FaultContext: Sendable {
    let options: FaultRunOptions
    let cluster: FaultCluster
    let clients: FaultClients
    let network: FaultNetwork
    let disks: Bool
    private let state = Mutex<(faults: [String: Int], events: [String], cuts: Set<[Int]>)>(([:], [], []))
    /// What the faults themselves found wrong (a node that did not come back).
    let failures = Mutex<[String]>([])

    /// The founder the membership change removes, chosen up front so that the full disk never
    /// hits it (a node removed during its full disk could not show that it serves again).
    let victim: Int

    init(options: FaultRunOptions, cluster: FaultCluster, clients: FaultClients, network: FaultNetwork, disks: Bool, founders: [Int]) {
        (self.options, self.cluster, self.clients, self.network, self.disks) = (options, cluster, clients, network, disks)
        var rng = SplitMix(seed: options.seed &+ 0x3e3)
        victim = founders[Int(rng.next() % UInt64(founders.count))]
    }

    func finding(_ line: String) {
        failures.withLock { $0.append(line) }
        options.log("seed \(options.seed): FINDING \(line)")
    }

    func counted(_ fault: String) { state.withLock { $0.faults[fault, default: 0] += 1 } }
    func event(_ line: String) {
        state.withLock { $0.events.append(line) }
        options.log("seed \(options.seed): \(line)")
    }

    // MARK: The run

    /// Clients, nemesis, membership change and full disk, all until the run's deadline.
    func exercise(into report: inout FaultRunReport) async throws {
        let start = ContinuousClock.now
        let deadline = start + options.duration
        await withTaskGroup(of: Void.self) { group in
            for client in 0..<options.clients {
                let seed = options.seed &* 1000 &+ UInt64(client)
                group.addTask { [cluster, clients] in
                    await clients.run(client: client, until: deadline, seed: seed) { await cluster.members }
                }
            }
            group.addTask { await self.nemesis(until: deadline) }
            if options.membershipChange {
                group.addTask {
                    try? await Task.sleep(until: start + self.options.duration * 0.25)
                    await self.changeMembership(until: deadline + .seconds(20))
                }
            }
            if disks {
                group.addTask {
                    try? await Task.sleep(until: start + self.options.duration * 0.6)
                    await self.fillDisk()
                }
            }
            group.addTask { await self.watchProcesses(until: deadline) }
        }
        state.withLock { s in
            report.faults = s.faults
            report.events += s.events
        }
        report.findings += failures.withLock { $0 }
    }

    /// Reaps processes while the run lasts, so that an unexpected death shows at once in the
    /// log; restarting is the nemesis's business.
    func watchProcesses(until deadline: ContinuousClock.Instant) async {
        while ContinuousClock.now < deadline {
            for death in await cluster.reap() where !death.expected {
                options.log("seed \(options.seed): \(death)")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    // MARK: Faults

    /// One fault at a time, each held for a while and then healed, until `deadline`.
    func nemesis(until deadline: ContinuousClock.Instant) async {
        var rng = SplitMix(seed: options.seed &+ 0xfa17)
        func pause(_ low: Int, _ high: Int) async {
            try? await Task.sleep(for: .milliseconds(low + Int(rng.next() % UInt64(high - low))))
        }
        while ContinuousClock.now < deadline {
            await pause(300, 1200)
            guard ContinuousClock.now < deadline else { break }
            let members = await cluster.members
            guard !members.isEmpty else { break }
            var target = members[Int(rng.next() % UInt64(members.count))]
            if rng.next() % 2 == 0, let leader = await leader(of: members) { target = leader }
            let kinds = network.mode == .namespaces ? ["kill", "pause", "isolate", "cut-link"] : ["kill", "pause"]
            let kind = kinds[Int(rng.next() % UInt64(kinds.count))]
            let snapshotDuring = rng.next() % 10 < 4
            switch kind {
            case "kill":
                guard await cluster.isRunning(target) else { continue }
                counted(kind)
                await cluster.signal(target, SIGKILL)
                if snapshotDuring { await forceSnapshot(members.filter { $0 != target }, &rng) }
                await pause(300, 2000)
                do { try await cluster.startIfMember(target) } catch { finding("restarting node \(target) failed: \(error)") }
            case "pause":
                guard await cluster.isRunning(target), !(await cluster.isPaused(target)) else { continue }
                counted(kind)
                await cluster.signal(target, SIGSTOP)
                if snapshotDuring { await forceSnapshot(members.filter { $0 != target }, &rng) }
                await pause(500, 3000)
                await cluster.signal(target, SIGCONT)
            case "isolate":
                var cut = true
                for other in members where other != target { cut = await self.cut(target, other) && cut }
                if cut { counted(kind) }
                if snapshotDuring { await forceSnapshot(members, &rng) }
                await pause(1000, 4000)
                await healAll()
            default:
                let others = members.filter { $0 != target }
                guard let other = others.isEmpty ? nil : others[Int(rng.next() % UInt64(others.count))] else { continue }
                if await cut(target, other) { counted(kind) }
                if snapshotDuring { await forceSnapshot(members, &rng) }
                await pause(1000, 4000)
                await healAll()
            }
        }
    }

    /// Cuts `a` from `b`; a cut that fails is a finding (the run would claim a partition it
    /// did not make).
    func cut(_ a: Int, _ b: Int) async -> Bool {
        do {
            state.withLock { _ = $0.cuts.insert([min(a, b), max(a, b)]) }
            try await network.cut(a, b)
            return true
        } catch {
            finding("cutting \(a)-\(b) failed: \(error)")
            return false
        }
    }

    func healAll() async {
        let cuts = state.withLock { s -> Set<[Int]> in
            defer { s.cuts = [] }
            return s.cuts
        }
        for pair in cuts { await network.heal(pair[0], pair[1]) }
    }

    /// `POST /admin/snapshot` on one of `nodes`.
    func forceSnapshot(_ nodes: [Int], _ rng: inout SplitMix) async {
        guard !nodes.isEmpty else { return }
        let node = nodes[Int(rng.next() % UInt64(nodes.count))]
        if let (status, _) = await admin(.POST, node, "/admin/snapshot"), status == 200 { counted("snapshot") }
    }

    /// Adds a new node (it joins as a learner, catches up and is promoted), then removes a
    /// founder and stops it, while the nemesis goes on.
    func changeMembership(until deadline: ContinuousClock.Instant) async {
        let before = await cluster.members
        let newID = (before.max() ?? 3) + 1
        do {
            try await network.addNamespace(newID)
            try await cluster.start(newID, join: true)
        } catch {
            event("membership: node \(newID) could not start: \(error)")
            return
        }
        let body = #"{"id": \#(newID), "raft": "\#(network.host(newID)):\#(network.raftPort(newID))", "http": "\#(network.host(newID)):\#(network.httpPort(newID))"}"#
        guard await leaderCall(.POST, "/cluster/members", body: body, until: deadline, done: { $0[newID] == "voter" }) else {
            event("membership: adding node \(newID) did not finish before the deadline (it may still)")
            await cluster.setMembers(before + [newID])
            return
        }
        await cluster.setMembers(before + [newID])
        counted("member-added")
        let victim = self.victim
        guard await leaderCall(.DELETE, "/cluster/members/\(victim)", until: deadline, done: { $0[victim] == nil }) else {
            event("membership: added node \(newID); removing node \(victim) did not finish before the deadline")
            return
        }
        await cluster.setMembers(before.filter { $0 != victim } + [newID])
        counted("member-removed")
        await cluster.signal(victim, SIGTERM)
        event("membership: added node \(newID), removed node \(victim) and stopped it")
    }

    /// Fills one member's disk, holds it full for a few seconds, frees it, and watches the node
    /// go on: it should answer 503 `diskFull` while its replica waits for space and serve again
    /// once there is room, without a restart. A node that exited instead (with status 1 and the
    /// full disk in its log) is started again, and the report says so.
    func fillDisk() async {
        let members = await cluster.members.filter { $0 != victim }
        guard !members.isEmpty else { return }
        var rng = SplitMix(seed: options.seed &+ 0xd15c)
        let target = members[Int(rng.next() % UInt64(members.count))]
        let written: Int
        do { written = try await cluster.fillDisk(target) } catch {
            event("full disk: could not fill node \(target)'s disk: \(error)")
            return
        }
        counted("disk-full")
        let hold = ContinuousClock.now + .milliseconds(2000 + Int(rng.next() % 2000))
        var sawDiskFull = false
        while ContinuousClock.now < hold {
            if let (status, body) = await admin(.GET, target, "/health", timeout: .seconds(1)), status == 503, FaultClients.errorCode(body) == "diskFull" {
                sawDiskFull = true
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        await cluster.freeDisk(target)
        let freed = ContinuousClock.now
        try? await Task.sleep(for: .milliseconds(200))
        await cluster.reap()
        var exited = false
        if !(await cluster.isRunning(target)) {
            // It should have waited for space; the death is a finding (FaultCluster.reap). It
            // is started again so that the rest of the run goes on.
            exited = true
            try? await cluster.startIfMember(target)
        }
        var resumed: Duration?
        while resumed == nil, freed.duration(to: .now) < .seconds(15) {
            if let (status, _) = await admin(.GET, target, "/health", timeout: .seconds(1)), status == 200 { resumed = freed.duration(to: .now) }
            else { try? await Task.sleep(for: .milliseconds(100)) }
        }
        let tail = await cluster.logTail(target, lines: 400)
        let line = tail.split(separator: "\n").last { $0.contains("No space left") || $0.contains("disk is full") }.map { line in
            line.range(of: "error=").map { String(line[$0.upperBound...]) } ?? String(line)
        }
        var text = "full disk: node \(target)'s disk filled (\(written >> 20) MiB of filler); "
        if exited {
            text += "the process exited (\(line.map { String($0.prefix(200)) } ?? "no ENOSPC line in its log")) and was started again"
        } else if sawDiskFull {
            text += "it answered 503 diskFull (\(line.map { String($0.prefix(160)) } ?? "")) and served again \(resumed.map { "\($0.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow))) after space returned" } ?? "NOT within 15 s")"
        } else {
            text += "it did not need to write meanwhile and kept running"
        }
        if resumed == nil { finding("node \(target) did not serve again within 15 s of its disk having room") }
        event(text)
    }

    // MARK: HTTP beside the history

    /// An administrative request to node `node`: status and body, or `nil` without an answer.
    func admin(_ method: HTTPMethod, _ node: Int, _ path: String, body: String? = nil, timeout: TimeAmount = .seconds(12)) async -> (Int, String)? {
        var request = HTTPClientRequest(url: network.url(node) + path)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        guard let response = try? await clients.admin.execute(request, timeout: timeout),
            let bytes = try? await response.body.collect(upTo: 4 << 20)
        else { return nil }
        return (Int(response.status.code), String(buffer: bytes))
    }

    /// Sends a membership request to whichever member leads until it answers 200, or the
    /// leader's committed membership shows it `done` (a retry of a change that completed after
    /// its answer was lost gets 400 or 404), or `deadline` passes.
    func leaderCall(
        _ method: HTTPMethod, _ path: String, body: String? = nil, until deadline: ContinuousClock.Instant, done: ([Int: String]) -> Bool
    ) async -> Bool {
        while ContinuousClock.now < deadline {
            let members = await cluster.members
            if let leader = await leader(of: members) {
                if let (status, _) = await admin(method, leader, path, body: body), status == 200 { return true }
                if let roles = await committedRoles(at: leader), done(roles) { return true }
            }
            try? await Task.sleep(for: .milliseconds(300))
        }
        return false
    }

    /// The roles of the members of `node`'s membership, if it leads and that membership is
    /// committed and not joint.
    func committedRoles(at node: Int) async -> [Int: String]? {
        guard let view = await clusterView(node), view["role"] as? String == "leader", view["membershipCommitted"] as? Bool == true,
            view["joint"] as? Bool == false, let list = view["members"] as? [[String: Any]]
        else { return nil }
        return Dictionary(uniqueKeysWithValues: list.compactMap { m in (m["id"] as? Int).map { ($0, m["role"] as? String ?? "") } })
    }

    /// A node's `GET /cluster`, parsed.
    func clusterView(_ node: Int) async -> [String: Any]? {
        guard let (status, body) = await admin(.GET, node, "/cluster", timeout: .seconds(1)), status == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
    }

    /// The member of `members` that says it leads, if one does.
    func leader(of members: [Int]) async -> Int? {
        var best: (node: Int, term: UInt64)?
        for node in members {
            guard let view = await clusterView(node), view["role"] as? String == "leader" else { continue }
            // A deposed leader that has not heard of the new term still says it leads.
            let term = (view["term"] as? NSNumber)?.uint64Value ?? 0
            if best == nil || term > best!.term { best = (node, term) }
        }
        return best?.node
    }

    /// Waits until some founder leads.
    func waitForLeader(_ limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await leader(of: await cluster.members) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw FaultRunError("no leader within \(limit) of starting; see the node logs")
    }
}
