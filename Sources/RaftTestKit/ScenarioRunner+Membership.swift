import Raft

extension ScenarioRunner {
    /// The directives of membership changes and leadership transfers (issue 8); `false` for a
    /// directive that is not one of them.
    ///
    /// - `membership L <change>... [mode=auto|joint|joint-manual]`: node L proposes the changes;
    ///   each is `+vN` (add voter N), `+lN` (add learner N), `pN` (promote), `dN` (demote) or
    ///   `-N` (remove), optionally with `@address` (`+v4@host:4`).
    /// - `leave-joint L`: node L proposes leaving a joint membership.
    /// - `transfer L T`: leader L hands leadership to T.
    /// - `members [N]`: the membership each node (or N) uses, with the index of its entry and
    ///   whether that entry is committed there.
    func executeMembership(_ cmd: String, _ a: Args, line ln: Int) throws -> Bool {
        switch cmd {
        case "membership":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            var changes: [MembershipChange] = []
            for word in a.positional.dropFirst() {
                guard let change = Self.parseChange(word) else {
                    throw ScenarioError(line: ln, message: "bad change '\(word)': use +vN, +lN, pN, dN or -N")
                }
                changes.append(change)
            }
            let mode: MembershipChangeMode
            switch a.named["mode"] ?? "auto" {
            case "auto": mode = .automatic
            case "joint": mode = .joint(autoLeave: true)
            case "joint-manual": mode = .joint(autoLeave: false)
            case let m: throw ScenarioError(line: ln, message: "unknown mode '\(m)'")
            }
            report { () throws(RaftError) in try c.changeMembership(id, changes, mode: mode) }
        case "leave-joint":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            report { () throws(RaftError) in try c.leaveJoint(id) }
        case "transfer":
            let c = try requireCluster(ln)
            let id = try node(a, 0, line: ln)
            let target = try node(a, 1, line: ln)
            do {
                try c.transferLeadership(id, to: target)
                out.append("transferring to \(target)")
            } catch {
                out.append(Self.refusal(error))
            }
            printQueued()
        case "members":
            let c = try requireCluster(ln)
            let ids = a.positional.isEmpty ? c.ids : [try node(a, 0, line: ln)]
            for id in ids {
                guard let core = c.core(id) else {
                    out.append("\(id): down")
                    continue
                }
                let state = core.membershipIndex <= core.commitIndex ? "committed" : "pending"
                out.append("\(id): \(Describe.membership(core.membership)) (entry \(core.membershipIndex), \(state))")
            }
        default:
            return false
        }
        return true
    }

    /// Runs a proposal and prints its receipt or refusal, then what it queued.
    private func report(_ body: () throws(RaftError) -> ProposalReceipt?) {
        do {
            if let r = try body() {
                out.append("accepted \(r.firstIndex) in term \(r.term)")
            } else {
                out.append("node is down")
            }
        } catch {
            out.append(Self.refusal(error))
        }
        printQueued()
    }

    static func refusal(_ error: RaftError) -> String {
        "refused: \(error.code): \(error.message)" + (error.leaderHint.map { " (leader \($0))" } ?? "")
    }

    static func parseChange(_ word: String) -> MembershipChange? {
        let parts = word.split(separator: "@", maxSplits: 1)
        let spec = parts.first.map(String.init) ?? ""
        let address = parts.count > 1 ? String(parts[1]) : ""
        func id(_ s: Substring) -> NodeID? { UInt64(s).map { NodeID(rawValue: $0) } }
        if spec.hasPrefix("+v"), let n = id(spec.dropFirst(2)) { return .addVoter(n, address: address) }
        if spec.hasPrefix("+l"), let n = id(spec.dropFirst(2)) { return .addLearner(n, address: address) }
        if spec.hasPrefix("p"), let n = id(spec.dropFirst()) { return .promote(n) }
        if spec.hasPrefix("d"), let n = id(spec.dropFirst()) { return .demote(n) }
        if spec.hasPrefix("-"), let n = id(spec.dropFirst()) { return .remove(n) }
        return nil
    }
}
