import Raft

/// Runs scenario files: readable, replayable tests of a simulated cluster.
///
/// A file is a sequence of blocks separated by blank lines. Each block is a directive line, a
/// `----` line, and the output the directive is expected to print. Lines starting with `#`
/// between blocks are comments. ``run(_:)`` returns the file as it should be with the actual
/// outputs, so a test compares it with the file, and a rewrite mode stores it.
///
/// Directives (node ids are numbers; `key=value` arguments are optional):
/// - `cluster nodes=3 prevote=true checkquorum=true election=10 heartbeat=1 seed=1
///    max-inflight=256 max-msg-bytes=1048576 max-inflight-bytes=0 max-uncommitted=67108864
///    refuse-follower-proposals=false trail=5 disk=memory|file [lease-drift=0.1]`: a new cluster
///    (no random faults; `disk=file` puts each node on a ``FileLogStorage`` over a
///    ``SimulatedFileSystem``; `lease-drift` enables lease reads with that drift bound).
/// - `campaign N`, `tick N [count=1]`, `tick-all [count=1]`, `propose N text [count=1] [size=bytes]`,
///   `read-index N context [lease=true]`: inputs to one node; they print what the node decided.
/// - `stabilize`: deliver every message (and what follows) until quiet, printing each one.
/// - `deliver [from=N] [to=N] [type=kind] [reject=true|false] [count=N]`, `drop ...`,
///   `duplicate ...`: deliver (the first `count`), lose or duplicate only the messages queued now
///   that match.
/// - `report-unreachable N peer`: the shell of `N` reports `peer` unreachable (a leader then
///   probes it).
/// - `partition 1 2 / 3`, `heal`, `crash N [phase=0...3]`, `restart N`, `wipe N`, `compact N`,
///   `hold N` / `release N` (stall a node's disk so a crash can lose unpersisted state).
/// - `status [N]`, `log N`, `pending`, `check`: inspection.
public final class ScenarioRunner {
    /// A directive that could not be parsed or run.
    public struct ScenarioError: Error, CustomStringConvertible {
        /// Line number in the file (1-based).
        public var line: Int
        /// What is wrong.
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    var cluster: SimCluster?
    var out: [String] = []
    var queuedBefore = 0

    /// Creates a runner.
    public init() {}

    /// Runs every block of `text` and returns the text with each block's output replaced by
    /// what the directive actually printed.
    public func run(_ text: String) throws -> String {
        var result: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var i = 0
        while i < lines.count {
            let line = lines[i]
            if line.trimmingSpaces.isEmpty || line.hasPrefix("#") {
                result.append(line)
                i += 1
                continue
            }
            // A directive: skip its old output (up to a blank line or end of file).
            let lineNumber = i + 1
            i += 1
            guard i < lines.count, lines[i] == "----" else {
                throw ScenarioError(line: lineNumber, message: "expected '----' after the directive")
            }
            i += 1
            while i < lines.count, !lines[i].trimmingSpaces.isEmpty { i += 1 }
            out = []
            do {
                try execute(line, lineNumber: lineNumber)
            } catch let e as ScenarioError {
                throw e
            } catch {
                out.append("error: \(error)")
            }
            result.append(line)
            result.append("----")
            result.append(contentsOf: out.isEmpty ? ["ok"] : out)
        }
        return result.joined(separator: "\n")
    }

    // MARK: Directives

    struct Args {
        var positional: [String] = []
        var named: [String: String] = [:]
        func int(_ k: String, _ d: Int) -> Int { named[k].flatMap { Int($0) } ?? d }
        func bool(_ k: String, _ d: Bool) -> Bool { named[k].map { $0 == "true" } ?? d }
    }

    func parse(_ line: String) -> (String, Args) {
        let words = line.split(separator: " ").map(String.init)
        var args = Args()
        for w in words.dropFirst() {
            if let eq = w.firstIndex(of: "=") {
                args.named[String(w[..<eq])] = String(w[w.index(after: eq)...])
            } else {
                args.positional.append(w)
            }
        }
        return (words.first ?? "", args)
    }

    func node(_ args: Args, _ k: Int, line: Int) throws -> NodeID {
        guard k < args.positional.count, let n = UInt64(args.positional[k]), n > 0 else {
            throw ScenarioError(line: line, message: "expected a node id as argument \(k + 1)")
        }
        return NodeID(rawValue: n)
    }

    func requireCluster(_ line: Int) throws -> SimCluster {
        guard let c = cluster else { throw ScenarioError(line: line, message: "no cluster: start with a 'cluster' directive") }
        return c
    }

    func matches(_ m: Message, _ a: Args) -> Bool {
        if let f = a.named["from"], f != m.from.description { return false }
        if let t = a.named["to"], t != m.to.description { return false }
        if let k = a.named["type"] {
            let name = Describe.message(m).split(separator: " ")[1]
            if name != k { return false }
        }
        if let r = a.named["reject"], (r == "true") != Describe.message(m).contains(" reject ") { return false }
        return true
    }

    func execute(_ line: String, lineNumber ln: Int) throws {
        let (cmd, a) = parse(line)
        queuedBefore = cluster?.pendingMessages.count ?? 0
        switch cmd {
        case "cluster":
            let nodes = a.int("nodes", 3)
            let onFile = a.named["disk"] == "file"
            let disk: ([NodeID]) -> any SimDisk = { onFile ? FileDisk(voters: $0) as any SimDisk : MemoryDisk(voters: $0) }
            let voters = a.named["voters"].flatMap { Int($0) }
            let c = try SimCluster(nodes: nodes, voters: voters, seed: UInt64(a.int("seed", 1)), configure: { cfg in
                cfg.preVote = a.bool("prevote", true)
                cfg.checkQuorum = a.bool("checkquorum", true)
                cfg.electionTicks = a.int("election", 10)
                cfg.heartbeatTicks = a.int("heartbeat", 1)
                cfg.maxInflightMessages = a.int("max-inflight", 256)
                cfg.maxMessageBytes = a.int("max-msg-bytes", 1 << 20)
                cfg.maxInflightBytes = a.int("max-inflight-bytes", 0)
                cfg.maxUncommittedBytes = a.int("max-uncommitted", 64 << 20)
                cfg.refuseProposalsOnFollower = a.bool("refuse-follower-proposals", false)
                if let drift = a.named["lease-drift"].flatMap(Double.init) { cfg.readLease = ReadLease(maxClockDrift: drift) }
            }, disk: disk)
            c.compactionTrail = UInt64(a.int("trail", 5))
            c.onDeliver = { [unowned self] m in self.out.append(Describe.message(m)) }
            c.onReady = { [unowned self] id, rd in
                if let s = rd.softState { self.out.append("> \(id) is \(s.role)" + (s.leader.isNone ? "" : " (leader \(s.leader))")) }
                if let snap = rd.snapshot {
                    self.out.append("> \(id) restores snapshot \(snap.metadata.index)/\(snap.metadata.term)")
                }
                if let f = rd.committedEntries.first, let l = rd.committedEntries.last {
                    self.out.append("> \(id) applies \(f.index)...\(l.index)")
                }
                for r in rd.readStates { self.out.append("> \(id) read \(Describe.data(r.context)) at index \(r.index)") }
            }
            c.onInterimReads = { [unowned self] id, states in
                for r in states { self.out.append("> \(id) read \(Describe.data(r.context)) at index \(r.index) (during its write)") }
            }
            cluster = c
        case "campaign":
            if !(try requireCluster(ln).campaign(node(a, 0, line: ln))) { out.append("not started") }
            printQueued()
        case "tick":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            for _ in 0..<a.int("count", 1) { c.tick(id) }
            printQueued()
        case "tick-all":
            let c = try requireCluster(ln)
            for _ in 0..<a.int("count", 1) { for id in c.ids { c.tick(id) } }
            printQueued()
        case "propose":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            let text = a.positional.count > 1 ? a.positional[1] : "x"
            let count = a.int("count", 1)
            var commands: [[UInt8]] = []
            for k in 0..<count {
                if let size = a.named["size"].flatMap({ Int($0) }) {
                    commands.append(Array(repeating: UInt8(ascii: "a") &+ UInt8(k % 26), count: size))
                } else {
                    commands.append(Array((count == 1 ? text : "\(text)\(k + 1)").utf8))
                }
            }
            do {
                if let r = try c.propose(id, commands) {
                    out.append("accepted \(r.firstIndex)...\(r.lastIndex) in term \(r.term)")
                } else {
                    out.append("forwarded")
                }
            } catch {
                out.append("refused: \(error.code): \(error.message)" + (error.leaderHint.map { " (leader \($0))" } ?? ""))
            }
            printQueued()
        case "read-index":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            let ctx = Array((a.positional.count > 1 ? a.positional[1] : "r").utf8)
            let confirmation: ReadConfirmation = a.bool("lease", false) ? .lease : .quorum
            do {
                _ = try c.withCore(id) { (core: inout RaftCore) throws(RaftError) in try core.readIndex(context: ctx, confirmation: confirmation) }
            } catch {
                out.append("refused: \(error.code)" + (error.leaderHint.map { " (leader \($0))" } ?? ""))
            }
            printQueued()
        case "stabilize":
            try requireCluster(ln).stabilize()
        case "deliver":
            let c = try requireCluster(ln)
            var left = a.int("count", Int.max)
            c.deliverQueued { m in
                guard left > 0, self.matches(m, a) else { return false }
                left -= 1
                return true
            }
        case "report-unreachable":
            let c = try requireCluster(ln)
            let peer = try node(a, 1, line: ln)
            _ = try c.withCore(node(a, 0, line: ln)) { (core: inout RaftCore) in core.reportUnreachable(peer) }
            printQueued()
        case "duplicate":
            let c = try requireCluster(ln)
            for m in c.pendingMessages where matches(m, a) {
                c.inject(m)
                out.append("duplicated " + Describe.message(m))
            }
        case "drop":
            let c = try requireCluster(ln)
            let lost = c.pendingMessages.filter { self.matches($0, a) }
            c.dropQueued { self.matches($0, a) }
            for m in lost { out.append("dropped " + Describe.message(m)) }
        case "partition":
            let c = try requireCluster(ln)
            var groups: [[NodeID]] = [[]]
            for w in a.positional {
                if w == "/" { groups.append([]) } else if let n = UInt64(w) { groups[groups.count - 1].append(NodeID(rawValue: n)) }
            }
            c.partition(groups)
        case "hold":
            try requireCluster(ln).hold(node(a, 0, line: ln))
        case "release":
            try requireCluster(ln).release(node(a, 0, line: ln))
            printQueued()
        case "heal":
            try requireCluster(ln).heal()
        case "crash":
            try requireCluster(ln).crash(node(a, 0, line: ln), phase: a.int("phase", 0))
        case "restart":
            try requireCluster(ln).restart(node(a, 0, line: ln))
            printQueued()
        case "wipe":
            try requireCluster(ln).wipe(node(a, 0, line: ln))
            printQueued()
        case "compact":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            if let at = c.compact(id) {
                out.append("snapshot at \(at), log now \(c.storage(id).firstIndex())...\(c.storage(id).lastIndex())")
            } else {
                out.append("nothing to compact")
            }
        case "status":
            let c = try requireCluster(ln)
            let ids = a.positional.isEmpty ? c.ids : [try node(a, 0, line: ln)]
            for id in ids { out.append(c.describeNode(id)) }
        case "log":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            let s = c.storage(id)
            let snap = (try? s.snapshot())?.metadata.index ?? .zero
            out.append("snapshot \(snap), entries \(s.firstIndex())...\(s.lastIndex())")
            if let es = try? s.entries(in: s.firstIndex()..<(s.lastIndex() + 1), maxBytes: .max), !es.isEmpty {
                out.append(Describe.entries(es))
            }
        case "pending":
            let c = try requireCluster(ln)
            queuedBefore = 0
            printQueued()
            if c.pendingMessages.isEmpty { out.append("no messages") }
        case "check":
            let c = try requireCluster(ln)
            out.append(c.checker.violations.isEmpty ? "safety ok" : c.checker.violations.joined(separator: "\n"))
        default:
            if try executeMembership(cmd, a, line: ln) { return }
            throw ScenarioError(line: ln, message: "unknown directive '\(cmd)'")
        }
    }

    /// Prints the messages the current directive queued (without delivering them: the
    /// scenario decides what to deliver).
    func printQueued() {
        guard let c = cluster else { return }
        for m in c.pendingMessages.dropFirst(queuedBefore) { out.append("queued " + Describe.message(m)) }
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
