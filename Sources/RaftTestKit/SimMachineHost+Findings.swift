import Raft

/// How the host compares states and results between nodes, and how it names what broke.
extension SimMachineHost {
    typealias Cause = SimStateMachineFinding.Cause

    /// Records `state` as node `n`'s at `metadata.index`, or compares it with the state the
    /// first node to reach that index held. `recovered` is set when the state comes straight
    /// from a snapshot recovery: where the snapshot came from, and the state before it.
    func compare(_ n: Int, _ metadata: SnapshotMetadata, _ state: Digest, recovered: (source: String, before: Digest?)?) {
        let index = metadata.index
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
            } else if let same = sameStateInOtherBytes(known, state, metadata) {
                cause = .snapshotBytesNotDeterministic
                why = same
            } else {
                cause = .snapshotLosesState
            }
        } else if let same = sameStateInOtherBytes(known, state, metadata) {
            cause = .snapshotBytesNotDeterministic
            how = "after applying entries up to index \(index) (\(history(n)))"
            why = same
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

    /// Whether two snapshots whose bytes differ may still hold the same state, compared as
    /// bytes (no ``SimMachineUnderTest/describeState``): fresh instances recovered from each
    /// return the same results for ``probeCommands`` further commands, and an empty instance
    /// returns other results. Says so for a message, or `nil`.
    func sameStateInOtherBytes(_ a: Digest, _ b: Digest, _ metadata: SnapshotMetadata) -> String? {
        guard machine.describeState == nil, let x = a.bytes, let y = b.bytes, let rx = probe(x, metadata), let ry = probe(y, metadata),
            let empty = probe(nil, metadata), rx.count == ry.count, rx.count == empty.count
        else { return nil }
        guard zip(rx, ry).allSatisfy({ machine.resultsMatch($0, $1) }), !zip(rx, empty).allSatisfy({ machine.resultsMatch($0, $1) }) else {
            return nil
        }
        return "; yet fresh instances recovered from the two snapshots return the same results for the next \(rx.count) commands "
            + "(a new instance returns others): most likely the same state, written as other bytes"
    }

    /// The results of ``probeCommands`` commands (the same ones on every call) applied after
    /// index `metadata.index` on a spare instance that recovered `bytes` (or none); `nil` if
    /// the instance cannot be made or throws.
    func probe(_ bytes: [UInt8]?, _ metadata: SnapshotMetadata) -> [SM.Result]? {
        guard let m = spareInstance() else { return nil }
        var random = SeededGenerator(seed: 0x5052_4F42_45)
        let entries = (1...Self.probeCommands).map { k in
            LogEntry(term: metadata.term, index: metadata.index + UInt64(k), data: machine.commands(&random))
        }
        do {
            if let bytes { try m.recoverSnapshot(from: SnapshotInput(bytes), metadata: metadata) }
            return try m.apply(entries[...])
        } catch {
            return nil
        }
    }

    static var probeCommands: Int { 32 }

    /// A new, empty instance for an analysis, apart from the nodes'; `nil` if the factory
    /// throws or it does not start empty (``fresh(_:)`` reports that on the nodes).
    func spareInstance() -> SM? {
        do {
            let m = try machine.make()
            guard (try m.openDurableState() ?? .zero) == .zero else { return nil }
            return m
        } catch {
            return nil
        }
    }

    static func fix(for cause: Cause) -> String {
        switch cause {
        case .nonDeterministicApply:
            return "apply must be deterministic: no clock, random numbers, global or static state, nothing but the state and the entries "
                + "(StateMachineChecks' determinism check shows it on one instance)"
        case .snapshotHoldsLaterState:
            return "prepareSnapshot must capture a point-in-time copy (a copy-on-write value, a read transaction), not a reference to the "
                + "live state, which later applies change before the snapshot is saved (StateMachineChecks' snapshotIsolation check)"
        case .snapshotBytesNotDeterministic:
            return "states are compared by their snapshot bytes, so equal states must save equal bytes: write a Dictionary or Set in sorted "
                + "order (its iteration order differs between instances), or pass describeState to compare states another way; if the "
                + "states do differ, see snapshotLosesState"
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
