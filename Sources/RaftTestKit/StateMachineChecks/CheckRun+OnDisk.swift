import Raft

// The durable applied-index rules of an on-disk state machine: reopen after a sync, reopen
// after a crash, a restore made durable.
extension CheckRun {
    static var atomicFix: String {
        "persist the applied index in the same atomic write as the data it describes (one database transaction, one file replaced by rename), never before nor after it; or make apply idempotent per index"
    }

    /// One directory, instances opened on it in turn: synced and reopened, crashed (dropped
    /// without a sync) and reopened, fed again from what it reopened at, restored from a
    /// snapshot.
    func onDiskAppliedIndex() throws(Failure) -> Step {
        let check = StateMachineCheck.onDiskAppliedIndex
        let reference = try referenceRun(check)
        let synced = max(1, last / 4)
        let crashed = max(synced, last / 2)
        let refed = max(crashed, (3 * last) / 4)
        // Each instance lives in a scope of its own and is released before the next one opens
        // the directory, as a restart or a crash ends the process that held it.
        let dir: String
        do {
            // 1. Apply, sync, reopen: the last applied index and its data.
            let (machine, fresh) = try fresh("on-disk", check)
            guard onDisk == true else { return .notApplicable("an in-memory state machine (openDurableState() returns nil)") }
            dir = fresh
            try applyInBatches(machine, 1...synced, check)
            try sync(machine, at: synced, check)
        }
        do {
            // 2. Apply more without a sync, then crash (the instance is dropped).
            let machine = try reopenExpecting(dir, index: synced, reference, check, after: "a sync at index \(synced)")
            if crashed > synced { try applyInBatches(machine, (synced + 1)...crashed, check) }
        }
        let held: Int
        do {
            // Whatever index it reopens at, between the synced one and the last applied, its
            // data must be exactly that index's; then the runtime feeds it from there.
            let (machine, reported) = try reopen(dir, check, what: "the directory after a crash")
            held = Int(reported?.rawValue ?? 0)
            try expectCrashState(machine, held: held, synced: synced, crashed: crashed, reference, check)
            if refed > held {
                let results = try applyInBatches(machine, (held + 1)...refed, check)
                try compare(results, with: reference, check, what: "an instance reopened after a crash at index \(held) and fed again", fix: Self.atomicFix)
            }
            try sync(machine, at: refed, check)
        }
        var notes = ["synced at \(synced), crashed at \(crashed), reopened at \(held), fed again to \(refed)"]
        let restored: [UInt8]? = last > refed ? try savedSnapshot(at: last, check) : nil
        do {
            // 3. After the entries fed again and a sync, the same state as the reference; 4. a
            // snapshot restored over it is durable once synced, index and data.
            let machine = try reopenExpecting(dir, index: refed, reference, check, after: "a crash, entries fed again from \(held + 1) and a sync at \(refed)")
            guard let restored else { return .passed(notes) }
            try recover(machine, from: restored, at: last, check)
            try sync(machine, at: last, check)
        }
        _ = try reopenExpecting(dir, index: last, reference, check, after: "restoring the snapshot of index \(last) and a sync")
        notes.append("snapshot of index \(last) restored over index \(refed), synced and reopened")
        return .passed(notes)
    }

    /// The snapshot of a fresh instance fed entries `1...index`.
    func savedSnapshot(at index: Int, _ check: StateMachineCheck) throws(Failure) -> [UInt8] {
        let (saver, _) = try fresh("snapshot-saver", check)
        try applyInBatches(saver, 1...index, check)
        return try snapshot(of: saver, at: index, check)
    }

    /// What an instance reopened after a crash must hold: an index between the one synced and
    /// the last applied, and exactly that index's data.
    func expectCrashState(_ machine: SM, held: Int, synced: Int, crashed: Int, _ reference: Reference, _ check: StateMachineCheck) throws(Failure) {
        if held > crashed {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(held)),
                "after a crash at index \(crashed) (applied, not synced) the state reopened at index \(held), ahead of everything applied",
                fix: "report on opening the index of the data persisted, never one not applied yet")
        }
        if held < synced {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(held)),
                "after a crash the state reopened at index \(held), behind index \(synced) it had synced before the crash",
                fix: "sync must make everything applied durable before it returns; an index once synced never goes back")
        }
        let found = try image(of: machine, at: held, check)
        guard found != reference.images[held] else { return }
        let consequence: String
        switch indexHolding(found, in: synced...crashed, near: held) {
        case let place? where place > held:
            consequence = "its data is the state at index \(place), ahead of its index: the runtime feeds entries \(held + 1)...\(place) again and they are applied twice"
        case let place?:
            consequence = "its data is the state at index \(place), behind its index: entries \(place + 1)...\(held) are lost"
        case nil:
            consequence = "its data matches no state between indexes \(synced) and \(crashed) (\(found.difference(from: reference.images[held])))"
        }
        throw Failure(
            check, at: LogIndex(rawValue: UInt64(held)),
            "after a crash (the instance dropped without a sync at index \(crashed)) the state reopened at index \(held); \(consequence)",
            fix: Self.atomicFix)
    }

    func sync(_ machine: SM, at index: Int, _ check: StateMachineCheck) throws(Failure) {
        do { try machine.sync() } catch {
            throw Failure(check, at: LogIndex(rawValue: UInt64(index)), "sync() threw at index \(index): \(error)", fix: "syncState must succeed on a healthy disk")
        }
    }

    /// Reopens `dir` (the instance before it is dropped) and expects `index` and its data.
    func reopenExpecting(_ dir: String, index: Int, _ reference: Reference, _ check: StateMachineCheck, after what: String) throws(Failure) -> SM {
        let (machine, held) = try reopen(dir, check, what: "the directory after \(what)")
        let reported = Int(held?.rawValue ?? 0)
        if reported != index {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(index)),
                "after \(what), reopening the state returned applied index \(reported), not \(index)",
                fix: "sync must make the applied index durable with the data, and openState must return it")
        }
        let found = try image(of: machine, at: index, check)
        if found != reference.images[index] {
            throw Failure(
                check, at: LogIndex(rawValue: UInt64(index)),
                "after \(what), the state reopened at index \(index) holds other data than the state at \(index) (\(found.difference(from: reference.images[index]))); \(whichState(found, in: 0...last, near: index))",
                fix: Self.atomicFix)
        }
        return machine
    }
}
