import BenchSupport
import Raft

extension TransportKind {
    var title: String {
        switch self {
        case .local: return "LocalTransport"
        case .tcp: return "TCPTransport (127.0.0.1)"
        }
    }
}

extension RaftNodeBench {
    /// Runs every concurrency level on a new cluster over `kind`, printing one row per level.
    static func runCluster(_ kind: TransportKind, options: Options, root: String) async throws -> ([LevelResult], [String]) {
        let cluster = try await Cluster(root: root, options: options, kind: kind)
        cluster.start()
        try await cluster.nodes[1]!.campaign()
        guard var leader = await cluster.leader() else {
            _ = await cluster.stop()
            throw RaftError(.timeout, "no leader was elected within 15 s")
        }
        print("leader: node \(leader.id)")
        let columns = [
            ("proposers", 9), ("proposals/s", 11), ("p50", 8), ("p99", 8), ("p99.9", 8), ("mean", 8), ("fsync/prop", 10), ("leader", 6),
            ("batch", 6), ("fsync", 6), ("CPU usr+sys", 11), ("wire B/prop", 11),
        ]
        print(columns.map { padLeft($0.0, $0.1) }.joined(separator: "  ") + "  errors")
        var results: [LevelResult] = []
        for level in options.levels {
            if let s = try? await leader.node.status(), s.raft.role != .leader {
                guard let l = await cluster.leader() else { break }
                leader = l
                print("(leader changed: now node \(leader.id))")
            }
            let r = await runLevel(level, leader: leader.node, cluster: cluster, leaderID: leader.id, options: options)
            results.append(r)
            let cells: [String] = [
                String(level),
                grouped(Int(r.rate.rounded())),
                latency(r.percentile(0.5)),
                latency(r.percentile(0.99)),
                latency(r.percentile(0.999)),
                latency(r.mean),
                ratio(r.all.syncs, r.completed),
                ratio(r.leader.syncs, r.completed),
                options.counting == .storage ? ratio(r.leader.appendedEntries, r.leader.appends) : "-",
                r.all.syncs == 0 ? "-" : latency(Double(r.all.syncNanos) / Double(r.all.syncs)),
                "\(fixed(100 * r.cpuUser / r.seconds, 0))+\(fixed(100 * r.cpuSystem / r.seconds, 0))%",
                kind == .tcp ? ratio(Int(r.wireBytes), r.completed) : "-",
            ]
            var errors = r.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            if r.wireDrops > 0 { errors.append("\(r.wireDrops) messages dropped by the transports") }
            print(zip(cells, columns).map { padLeft($0, $1.1) }.joined(separator: "  ") + "  " + (errors.isEmpty ? "none" : errors.joined(separator: ", ")))
            if options.resultLines { print(resultLine(r, kind: kind)) }
        }
        return (results, await cluster.stop())
    }

    /// One level as `RESULT key=value ...`: completed proposals, failed ones, the measured
    /// seconds, latency percentiles in milliseconds and the process's CPU seconds (user + system)
    /// in the measured window. Benchmarks/peers/run.sh reads these lines.
    static func resultLine(_ r: LevelResult, kind: TransportKind) -> String {
        let failed = r.errors.values.reduce(0, +)
        // No thousands separators: the reader splits on spaces and parses plain decimals.
        func plain(_ x: Double) -> String { fixed(x, 3).filter { $0 != "," } }
        func ms(_ p: Double) -> String { plain(r.percentile(p) / 1e6) }
        return "RESULT system=raft-node-bench-\(kind.rawValue) level=\(r.proposers) ops=\(r.completed) errors=\(failed) "
            + "seconds=\(plain(r.seconds)) p50_ms=\(ms(0.5)) p99_ms=\(ms(0.99)) p999_ms=\(ms(0.999)) self_cpu_s=\(plain(r.cpuUser + r.cpuSystem))"
    }

    /// Prints TCP against LocalTransport at each level, and the issue's targets for the TCP
    /// transport; returns whether one was missed.
    static func compareTransports(local: [LevelResult], tcp: [LevelResult]) -> Bool {
        print("")
        print("TCPTransport against LocalTransport (same run, same disk):")
        var missed = false
        for t in tcp {
            guard let l = local.first(where: { $0.proposers == t.proposers }) else { continue }
            print(
                "  \(padLeft(String(t.proposers), 3)) proposers: throughput \(fixed(100 * t.rate / l.rate, 0))% of local, "
                    + "p50 \(latency(t.percentile(0.5))) vs \(latency(l.percentile(0.5))) "
                    + "(+\(latency(t.percentile(0.5) - l.percentile(0.5)))), wire \(ratio(Int(t.wireBytes), t.completed)) B/proposal")
            if t.proposers == 64 || t.proposers == 256 {
                let met = t.rate >= 0.8 * l.rate
                missed = missed || !met
                print("  target: \(t.proposers) proposers, TCP throughput within 20% of local -> \(met ? "MET" : "MISSED")")
            }
            if t.proposers == 1 {
                let extra = t.percentile(0.5) - l.percentile(0.5)
                let met = extra <= 100_000
                missed = missed || !met
                print("  target: 1 proposer, TCP p50 at most 100 µs above local (+\(latency(extra))) -> \(met ? "MET" : "MISSED")")
            }
        }
        return missed
    }
}
