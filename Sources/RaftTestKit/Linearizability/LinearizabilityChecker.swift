/// Decides whether a concurrent history is linearizable with respect to a sequential
/// ``LinearizabilityModel``: whether every operation can be given one instant between its
/// invocation and its completion at which it took effect, such that the operations, taken in the
/// order of those instants, are a run the model accepts. Operations with an unknown outcome may
/// take effect at any instant after their invocation, or not at all.
///
/// The history is split into the model's partitions (keys of a key-value store), and each
/// partition is searched on its own with the algorithm of Wing and Gong (1993) as refined by Lowe
/// (2017) and used by porcupine: operations are tried in order of invocation; an operation that
/// fits is taken off a doubly linked list of call and return events and put back on
/// backtracking, so undoing a step costs O(1); and every (set of operations taken, state) pair
/// reached is remembered, so no configuration is explored twice. Partitions are checked in the
/// order their first operation appears, and the search is deterministic: the same history gives
/// the same result and the same report.
///
/// ```swift
/// let checker = LinearizabilityChecker(model: KeyValueModel<String, String>())
/// let result = checker.check(recorder.history())
/// #expect(result.isLinearizable, "\(result)")
/// ```
///
/// The search is exponential in the worst case (the problem is NP-complete); ``Budget`` bounds
/// the work, and a search that runs out of it ends in ``LinearizabilityResult/unknown(_:)``.
/// Linearizable histories check at about half a million operations per second in a release
/// build (`Benchmarks/raft-lincheck-bench`). Rejecting a history means exhausting the search of
/// the offending partition, and that grows quickly with the unknown-outcome operations that
/// change its state: with a hundred unknown-outcome writes on one key it can take minutes, so
/// give such checks a budget.
public struct LinearizabilityChecker<Model: LinearizabilityModel>: Sendable {
    /// How much work a check may do before it gives up with ``LinearizabilityResult/unknown(_:)``.
    public enum Budget: Sendable, Hashable {
        /// No limit.
        case unlimited
        /// At most this many model steps over all partitions.
        case steps(Int)
        /// At most this much time (of `ContinuousClock`) for the whole check.
        case time(Duration)
    }

    /// The specification histories are checked against.
    public let model: Model
    /// The work one ``check(_:)`` may do.
    public let budget: Budget

    /// A checker of histories against `model`, with a bound on the work of one check.
    public init(model: Model, budget: Budget = .unlimited) {
        self.model = model
        self.budget = budget
    }

    /// Checks `history`: ``LinearizabilityResult/linearizable`` when every partition is,
    /// otherwise the first partition (in order of first appearance) that is not, with an
    /// explanation, or ``LinearizabilityResult/unknown(_:)`` when the budget ran out first.
    ///
    /// Inlinable so that the search is specialized for the caller's model: unspecialized, it
    /// spends most of its time looking up generic metadata.
    @inlinable
    public func check(_ history: LinearizabilityHistory<Model.Input, Model.Output>) -> LinearizabilityResult<Model.Input, Model.Output> {
        var meter = BudgetMeter(budget)
        var partitions: [[Int]] = []
        var indexOf: [Model.Partition: Int] = [:]
        for operation in history.operations {
            let key = model.partition(of: operation.input)
            if let p = indexOf[key] {
                partitions[p].append(operation.id)
            } else {
                indexOf[key] = partitions.count
                partitions.append([operation.id])
            }
        }
        for (number, ids) in partitions.enumerated() {
            var search = PartitionSearch(model: model, operations: ids.map { history.operations[$0] })
            switch search.run(&meter) {
            case .linearizable:
                continue
            case .deadEnd(let deadEnd):
                return .notLinearizable(explain(deadEnd, search, ids, history))
            case .exhausted:
                let key = model.partition(of: history.operations[ids[0]].input)
                return .unknown(
                    LinearizabilityResult.Exhausted(
                        budget: "\(budget)", steps: meter.steps, partitionsChecked: number, partitions: partitions.count,
                        partition: model.describe(partition: key)))
            }
        }
        return .linearizable
    }

    /// Turns the deepest dead end of a failed partition search into a report (not inlined: it
    /// runs once per failed check).
    @usableFromInline
    func explain(
        _ deadEnd: DeadEnd<Model.State>, _ search: PartitionSearch<Model>, _ ids: [Int],
        _ history: LinearizabilityHistory<Model.Input, Model.Output>
    ) -> LinearizabilityViolation<Model.Input, Model.Output> {
        let operations = ids.map { history.operations[$0] }
        var labels: [Int: String] = [:]
        for operation in operations {
            let output = operation.output.map { model.describe(output: $0) } ?? "?"
            labels[operation.id] = "\(model.describe(input: operation.input)) -> \(output)"
        }
        let candidates = search.candidates(at: deadEnd).map { local in
            let operation = operations[local]
            let fits: Bool
            if let output = operation.output {
                fits = model.step(deadEnd.state, operation.input, output) != nil
            } else {
                fits = true
            }
            return LinearizabilityViolation<Model.Input, Model.Output>.Candidate(operation: operation.id, fits: fits)
        }
        return LinearizabilityViolation(
            partition: model.describe(partition: model.partition(of: operations[0].input)),
            operations: operations,
            linearizedPrefix: deadEnd.prefix.map { ids[$0] },
            stateAfterPrefix: model.describe(state: deadEnd.state),
            blocked: ids[deadEnd.blocked],
            candidates: candidates,
            labels: labels)
    }
}

/// Counts the steps of a check against its budget; reads the clock every 4,096 steps only.
@usableFromInline
struct BudgetMeter {
    @usableFromInline var steps = 0
    @usableFromInline let limit: Int
    @usableFromInline let deadline: ContinuousClock.Instant?

    @inlinable init<Model>(_ budget: LinearizabilityChecker<Model>.Budget) {
        switch budget {
        case .unlimited: (limit, deadline) = (Int.max, nil)
        case .steps(let n): (limit, deadline) = (n, nil)
        case .time(let d): (limit, deadline) = (Int.max, ContinuousClock.now + d)
        }
    }

    /// Counts one step; `false` when the budget is spent.
    @inlinable mutating func spend() -> Bool {
        guard steps < limit else { return false }
        steps += 1
        if let deadline, steps & 4095 == 0, ContinuousClock.now >= deadline { return false }
        return true
    }
}
