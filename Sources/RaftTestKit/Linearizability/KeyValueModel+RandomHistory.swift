extension KeyValueModel where Key == String, Value == String {
    /// A random history that is linearizable by construction, to test checkers and measure them.
    ///
    /// Simulated clients run against one sequential store on a shared clock. At each tick one
    /// thing happens, chosen at random: an idle client invokes an operation (40% get, 30% put,
    /// 20% compare-and-swap, 10% delete, on one of `keys` keys `k0`, `k1`, ...); an invoked
    /// operation takes effect on the store (its linearization point); or an operation that took
    /// effect returns its output. With probability `unknownFraction` a client gives up on its
    /// operation instead of waiting (outcome ``LinearizabilityHistory/Outcome/unknown``), and an
    /// abandoned operation that had not taken effect yet may still take effect later, or never,
    /// as a timed-out request can. Every put and swap writes a value no other write uses
    /// (`v1`, `v2`, ...); a compare-and-swap expects the current value 60% of the time.
    ///
    /// The same arguments give the same history.
    ///
    /// - Parameters:
    ///   - seed: the random seed.
    ///   - operations: how many operations to invoke.
    ///   - keys: how many keys (at least 1).
    ///   - clients: how many clients run at once (at least 1).
    ///   - unknownFraction: the chance that a client abandons an operation (0 to 1).
    public static func randomHistory(
        seed: UInt64, operations: Int, keys: Int, clients: Int, unknownFraction: Double = 0
    ) -> LinearizabilityHistory<Input, Output> {
        var random = SplitMix64(seed: seed)
        func chance(_ p: Double) -> Bool { Double(random.next() >> 11) / Double(1 << 53) < p }
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(max(n, 1))) }

        let model = KeyValueModel()
        var store: [String: String] = [:]
        var written: [String: [String]] = [:]
        var inputs: [(client: Int, input: Input, invocation: Int64)] = []
        var outcomes: [LinearizabilityHistory<Input, Output>.Outcome] = []
        var waiting: [(client: Int, op: Int)] = []  // invoked, not yet taken effect
        var answering: [(client: Int, op: Int, output: Output)] = []  // took effect, not returned
        var abandoned: [Int] = []  // given up on before taking effect
        var idle = Array(0..<max(clients, 1))
        var time: Int64 = 0
        var counter = 0

        while inputs.count < operations || !waiting.isEmpty || !answering.isEmpty {
            time += 1
            let canInvoke = inputs.count < operations && !idle.isEmpty
            switch pick(3) {
            case 0 where canInvoke:
                let client = idle.remove(at: pick(idle.count))
                let key = "k\(pick(keys))"
                let input: Input
                switch pick(10) {
                case 0..<4: input = .get(key: key)
                case 4..<7:
                    counter += 1
                    input = .put(key: key, value: "v\(counter)")
                case 7..<9:
                    counter += 1
                    let old = written[key, default: []]
                    let expected = chance(0.6) || old.isEmpty ? store[key] : old[pick(old.count)]
                    input = .compareAndSwap(key: key, expected: expected, new: "v\(counter)")
                default: input = .delete(key: key)
                }
                waiting.append((client, inputs.count))
                inputs.append((client, input, time))
                outcomes.append(.unknown)
            case 1 where !waiting.isEmpty || !abandoned.isEmpty:
                let fromAbandoned = waiting.isEmpty || (!abandoned.isEmpty && chance(0.1))
                let op = fromAbandoned ? abandoned.remove(at: pick(abandoned.count)) : waiting[pick(waiting.count)].op
                let input = inputs[op].input
                let output = model.apply(store[input.key], input).output
                store[input.key] = model.step(store[input.key], input)
                if case .put(let key, let value) = input { written[key, default: []].append(value) }
                if case .compareAndSwap(let key, _, let value) = input, output == .swapped(true) { written[key, default: []].append(value) }
                if !fromAbandoned, let w = waiting.firstIndex(where: { $0.op == op }) {
                    answering.append((waiting.remove(at: w).client, op, output))
                }
            case 2 where !answering.isEmpty:
                let done = answering.remove(at: pick(answering.count))
                idle.append(done.client)
                if !chance(unknownFraction) { outcomes[done.op] = .returned(done.output, at: time) }
            default:
                // Nothing of the chosen kind can happen now: maybe a waiting client gives up.
                if !waiting.isEmpty, chance(unknownFraction) {
                    let gone = waiting.remove(at: pick(waiting.count))
                    abandoned.append(gone.op)
                    idle.append(gone.client)
                }
            }
        }
        var history = LinearizabilityHistory<Input, Output>()
        for (op, call) in inputs.enumerated() {
            history.appendChecked(client: call.client, call.input, invokedAt: call.invocation, outcome: outcomes[op])
        }
        return history
    }
}
