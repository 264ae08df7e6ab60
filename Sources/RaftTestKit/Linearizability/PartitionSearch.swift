/// The Wing–Gong–Lowe search over the operations of one partition (see
/// ``LinearizabilityChecker``).
///
/// Events live in arrays: entry 0 is the list head, entries `1...` are the call and return
/// events sorted by time (calls before returns at the same instant, so touching intervals are
/// concurrent; ties broken by operation number, so the order is deterministic). Operations with
/// an unknown outcome have a call event and no return event: nothing forces them to take effect.
///
/// Invariant: the linked list holds exactly the events of the operations not linearized, in time
/// order; `linearized` is the set of those taken, `state` the model state after them.
@usableFromInline
struct PartitionSearch<Model: LinearizabilityModel> {
    @usableFromInline let model: Model
    @usableFromInline let inputs: [Model.Input]
    /// The output of each operation, `nil` for an unknown outcome.
    @usableFromInline let outputs: [Model.Output?]
    /// Per entry: the operation it belongs to (entry 0, the head: -1).
    @usableFromInline let operationOf: [Int]
    /// Per entry: its return entry for a call of a returned operation, 0 for a call of an
    /// operation with an unknown outcome, -1 for a return entry (and the head).
    @usableFromInline let returnOf: [Int]
    @usableFromInline var next: [Int]
    @usableFromInline var prev: [Int]
    /// A random 64-bit word per operation; the memo key's hash is the XOR of the taken ones.
    @usableFromInline let zobrist: [UInt64]

    @inlinable init(model: Model, operations: [LinearizabilityHistory<Model.Input, Model.Output>.Operation]) {
        self.model = model
        inputs = operations.map(\.input)
        outputs = operations.map(\.output)
        // (time, 0 for a call and 1 for a return, operation)
        var events: [(time: Int64, kind: Int, operation: Int)] = []
        events.reserveCapacity(2 * operations.count)
        for (i, op) in operations.enumerated() {
            events.append((op.invocation, 0, i))
            if let completion = op.completion { events.append((completion, 1, i)) }
        }
        events.sort { ($0.time, $0.kind, $0.operation) < ($1.time, $1.kind, $1.operation) }
        var operationOf = [-1]
        var returnOf = [-1]
        var callEntry = [Int](repeating: 0, count: operations.count)
        for (n, event) in events.enumerated() {
            let entry = n + 1
            operationOf.append(event.operation)
            if event.kind == 0 {
                callEntry[event.operation] = entry
                returnOf.append(0)
            } else {
                returnOf[callEntry[event.operation]] = entry
                returnOf.append(-1)
            }
        }
        self.operationOf = operationOf
        self.returnOf = returnOf
        let count = events.count + 1
        next = (0..<count).map { $0 + 1 < count ? $0 + 1 : -1 }
        prev = (0..<count).map { $0 - 1 }
        var generator = SplitMix64(seed: 0x6C69_6E63_6865_636B)
        zobrist = operations.map { _ in generator.next() }
    }

    /// Takes a call entry and its return entry (if any) off the list.
    @inlinable mutating func lift(_ entry: Int) {
        unlink(entry)
        let r = returnOf[entry]
        if r > 0 { unlink(r) }
    }

    /// Puts back what ``lift(_:)`` took off, in reverse order.
    @inlinable mutating func unlift(_ entry: Int) {
        let r = returnOf[entry]
        if r > 0 { relink(r) }
        relink(entry)
    }

    @inlinable mutating func unlink(_ e: Int) {
        next[prev[e]] = next[e]
        if next[e] >= 0 { prev[next[e]] = prev[e] }
    }

    @inlinable mutating func relink(_ e: Int) {
        if next[e] >= 0 { prev[next[e]] = e }
        next[prev[e]] = e
    }

    /// Runs the search to the end, or until `meter` runs out.
    ///
    /// Each round scans the list from the head twice, up to the first return event: first for
    /// returned operations, then for operations with an unknown outcome, so that leaving those
    /// out is always tried first.
    ///
    /// A configuration is (returned operations taken, state, unknown-outcome operations taken);
    /// it is pruned when one with the same returned operations and state and a subset of its
    /// unknown-outcome operations was reached before: that one can do everything this one can
    /// (the same state, more operations left), so if this one could finish, that one can by the
    /// same steps. With no unknown outcomes this is the plain memo of Lowe's algorithm.
    /// (Restricting the search to orders in which an unknown-outcome operation is always
    /// followed by one that needs it was tried: it made failing searches slower, because the
    /// restriction has to be part of the memo key.)
    @inlinable mutating func run(_ meter: inout BudgetMeter) -> SearchOutcome<Model.State> {
        var remaining = outputs.reduce(0) { $0 + ($1 == nil ? 0 : 1) }
        var returned = Bitset(count: inputs.count)  // returned operations taken
        // Unknown-outcome operations taken (no words at all when there are none).
        var unknown = Bitset(count: outputs.contains { $0 == nil } ? inputs.count : 0)
        var hash: UInt64 = 0  // of `returned`
        var state = model.initialState
        var memo: [MemoKey<Model.State>: [Bitset]] = [:]
        var stack: [(entry: Int, state: Model.State, secondPass: Bool)] = []
        var deepest: DeadEnd<Model.State>?
        var entry = next[0]
        var secondPass = false
        while remaining > 0 {
            // The list cannot end while a returned operation is left (its return event would
            // come first): a return event, or the end, ends a pass.
            guard entry > 0, returnOf[entry] >= 0 else {
                if !secondPass {
                    secondPass = true
                    entry = next[0]
                    continue
                }
                let deadEnd: DeadEnd<Model.State>
                if let d = deepest, d.prefix.count >= stack.count {
                    deadEnd = d
                } else {
                    let blocked = entry > 0 ? operationOf[entry] : firstReturned()
                    deadEnd = DeadEnd(prefix: stack.map { operationOf[$0.entry] }, state: state, blocked: blocked)
                    deepest = deadEnd
                }
                guard let top = stack.popLast() else { return .deadEnd(deadEnd) }
                let op = operationOf[top.entry]
                if outputs[op] != nil {
                    returned.remove(op)
                    hash ^= zobrist[op]
                    remaining += 1
                } else {
                    unknown.remove(op)
                }
                (state, secondPass) = (top.state, top.secondPass)
                unlift(top.entry)
                entry = next[top.entry]
                continue
            }
            let op = operationOf[entry]
            // A call of the kind this pass does not try.
            guard (outputs[op] == nil) == secondPass else {
                entry = next[entry]
                continue
            }
            guard meter.spend() else { return .exhausted }
            var taken = false
            if let output = outputs[op] {
                if let after = model.step(state, inputs[op], output) {
                    var bits = returned
                    bits.insert(op)
                    let key = MemoKey(bits: bits, hash: hash ^ zobrist[op], state: after)
                    if Self.remember(key, unknown, in: &memo) {
                        stack.append((entry, state, secondPass))
                        (returned, hash, state, taken) = (bits, hash ^ zobrist[op], after, true)
                        remaining -= 1
                    }
                }
            } else {
                // One that leaves the state as it is can always be left out instead.
                let after = model.step(state, inputs[op])
                if after != state {
                    var bits = unknown
                    bits.insert(op)
                    if Self.remember(MemoKey(bits: returned, hash: hash, state: after), bits, in: &memo) {
                        stack.append((entry, state, secondPass))
                        (unknown, state, taken) = (bits, after, true)
                    }
                }
            }
            if taken {
                lift(entry)
                entry = next[0]
                secondPass = false
            } else {
                entry = next[entry]
            }
        }
        return .linearizable
    }

    /// Records the configuration (`key`, `unknown`) and returns `true`, or returns `false` when
    /// one with the same key and a subset of `unknown` was recorded before.
    @inlinable static func remember(_ key: MemoKey<Model.State>, _ unknown: Bitset, in memo: inout [MemoKey<Model.State>: [Bitset]]) -> Bool {
        if let earlier = memo[key], earlier.contains(where: { $0.isSubset(of: unknown) }) { return false }
        memo[key, default: []].append(unknown)
        return true
    }

    /// The operation of the first return entry on the list.
    @inlinable func firstReturned() -> Int {
        var e = next[0]
        while e > 0, returnOf[e] >= 0 { e = next[e] }
        return e > 0 ? operationOf[e] : -1
    }

    /// The operations that could have been taken next at `deadEnd`: not in its prefix, invoked
    /// no later than the blocked operation returned (by the event order).
    @inlinable func candidates(at deadEnd: DeadEnd<Model.State>) -> [Int] {
        let taken = Set(deadEnd.prefix)
        var result: [Int] = []
        for entry in 1..<operationOf.count {
            let op = operationOf[entry]
            if returnOf[entry] < 0 {
                if op == deadEnd.blocked { break }
                continue
            }
            if !taken.contains(op) { result.append(op) }
        }
        return result
    }
}

/// How one partition's search ended.
@usableFromInline
enum SearchOutcome<State> {
    case linearizable
    case deadEnd(DeadEnd<State>)
    case exhausted
}

/// The deepest point a failed search reached: the operations it had linearized (local numbers,
/// in order), the state after them, and the returned operation none of the candidates could be
/// followed by.
@usableFromInline
struct DeadEnd<State> {
    @usableFromInline var prefix: [Int]
    @usableFromInline var state: State
    @usableFromInline var blocked: Int

    @inlinable init(prefix: [Int], state: State, blocked: Int) {
        (self.prefix, self.state, self.blocked) = (prefix, state, blocked)
    }
}

/// A memoized configuration: the set of linearized operations and the state after them.
@usableFromInline
struct MemoKey<State: Hashable>: Hashable {
    @usableFromInline var bits: Bitset
    @usableFromInline var hash: UInt64
    @usableFromInline var state: State

    @inlinable init(bits: Bitset, hash: UInt64, state: State) {
        (self.bits, self.hash, self.state) = (bits, hash, state)
    }

    @inlinable func hash(into hasher: inout Hasher) {
        hasher.combine(hash)
        hasher.combine(state)
    }

    @inlinable static func == (a: MemoKey, b: MemoKey) -> Bool { a.hash == b.hash && a.state == b.state && a.bits == b.bits }
}

/// A fixed-size set of small integers.
@usableFromInline
struct Bitset: Equatable {
    @usableFromInline var words: [UInt64]

    @inlinable init(count: Int) { words = [UInt64](repeating: 0, count: (count + 63) / 64) }

    @inlinable mutating func insert(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }
    @inlinable mutating func remove(_ i: Int) { words[i >> 6] &= ~(1 << UInt64(i & 63)) }

    /// Whether every member of `self` is in `other` (both of the same count).
    @inlinable func isSubset(of other: Bitset) -> Bool {
        for i in words.indices where words[i] & ~other.words[i] != 0 { return false }
        return true
    }
}

/// The SplitMix64 generator (Steele, Lea and Flood 2014): deterministic hash words.
@usableFromInline
struct SplitMix64 {
    @usableFromInline var x: UInt64
    @inlinable init(seed: UInt64) { x = seed }
    @inlinable mutating func next() -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
