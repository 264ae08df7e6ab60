import Raft

/// How the host compares states and results between nodes, and how it names what broke.
extension SimMachineHost {
    typealias Cause = SimStateMachineFinding.Cause

    /// Records `state` as node `n`'s at `index`, or compares it with the state the first node
    /// to reach `index` held. `recovered` is set when the state comes straight from a snapshot
    /// recovery: where the snapshot came from, and the state before it.
    func compare(_ n: Int, at index: LogIndex, _ state: Digest, recovered: (source: String, before: Digest?)?) {
        guard let known = digests[index] else {
            digests[index] = state
            return
        }
        stats.statesCompared += 1
        guard known.hash != state.hash else { return }
        let cause: Cause
        let how: String
        var why = ""
        if let (source, before) = recovered {
            how = "right after recovering \(source) at index \(index)"
            if let before, before.hash == state.hash {
                cause = .recoverIgnoresSnapshot
                why = "; that is the state it held before the recovery"
            } else if let later = laterIndex(holding: state.hash, after: index) {
                cause = .snapshotHoldsLaterState
                why = "; that is the state at index \(later), after the snapshot's index"
            } else {
                cause = .snapshotLosesState
            }
        } else if !state.viaSnapshot && !known.viaSnapshot {
            cause = .nonDeterministicApply
            how = "after applying entries up to index \(index) (\(history(n)))"
            why = "; neither node recovered a snapshot, both applied the same entries"
        } else {
            cause = .snapshotLosesState
            how = "after applying entries up to index \(index) (\(history(n)))"
        }
        report(
            .init(
                .stateMachineSafety, cause: cause, node: ids[n], at: index,
                "\(how), it holds \(state.preview); node \(known.node) held \(known.preview) at that index\(why)",
                fix: Self.fix(for: cause)))
    }

    /// Node `n` returned `result` for `entry`; the first node to apply it returned another.
    func resultsDiffer(_ n: Int, _ replica: Replica, _ entry: LogEntry, _ result: SM.Result, _ known: (node: NodeID, result: SM.Result, viaSnapshot: Bool)) {
        let cause: Cause = replica.recoveries.isEmpty && !known.viaSnapshot ? .nonDeterministicApply : .snapshotLosesState
        let other = known.node == ids[n] ? "before a restart it returned" : "node \(known.node) returned"
        report(
            .init(
                .sameResults, cause: cause, node: ids[n], at: entry.index,
                "it returned \(Self.clip(String(reflecting: result))) for \(Describe.entry(entry)) (\(history(n))); \(other) \(Self.clip(String(reflecting: known.result)))",
                fix: Self.fix(for: cause)))
    }

    /// How node `n`'s instance got its state, for a message.
    func history(_ n: Int) -> String {
        guard let replica = replicas[n], !replica.recoveries.isEmpty else { return "fed every entry since it started empty" }
        return "it recovered " + replica.recoveries.map { "\($0.source) at index \($0.index)" }.joined(separator: ", then ")
    }

    /// The nearest index after `index` at which some node held the state hashed `hash`.
    func laterIndex(holding hash: UInt64, after index: LogIndex) -> LogIndex? {
        digests.filter { $0.key > index && $0.value.hash == hash }.keys.min()
    }

    static func fix(for cause: Cause) -> String {
        switch cause {
        case .nonDeterministicApply:
            return "apply must be deterministic: no clock, random numbers, global or static state, nothing but the state and the entries "
                + "(StateMachineChecks' determinism check shows it on one instance)"
        case .snapshotHoldsLaterState:
            return "prepareSnapshot must capture a point-in-time copy (a copy-on-write value, a read transaction), not a reference to the "
                + "live state, which later applies change before the snapshot is saved (StateMachineChecks' snapshotIsolation check)"
        case .recoverIgnoresSnapshot:
            return "recoverSnapshot must replace the whole state with the one it reads (StateMachineChecks' snapshotRoundTrip check)"
        case .snapshotLosesState:
            return "saveSnapshot must write every part of the state that apply reads, and recoverSnapshot restore all of it "
                + "(StateMachineChecks' snapshotRoundTrip check; pass describeState to compare the whole state, not only what the snapshot holds); "
                + "if the snapshot holds everything, apply is not deterministic"
        case .contract:
            return "keep the state machine contract (see StateMachine)"
        }
    }

    static func clip(_ s: String) -> String { s.count > 80 ? String(s.prefix(80)) + "..." : s }
}
