/// The verdict of a ``LinearizabilityChecker``; its `description` is the report to print.
public enum LinearizabilityResult<Input, Output>: CustomStringConvertible {
    /// Every partition of the history is linearizable.
    case linearizable
    /// A partition is not: no order of its operations respects both real time and the model.
    case notLinearizable(LinearizabilityViolation<Input, Output>)
    /// The budget ran out before the check could decide; nothing is known about the partitions
    /// not finished.
    case unknown(Exhausted)

    /// Where a check that ran out of budget stopped.
    public struct Exhausted: Sendable, Hashable, CustomStringConvertible {
        /// The budget, as written (`steps(1000)`).
        public let budget: String
        /// Model steps taken over all partitions.
        public let steps: Int
        /// Partitions found linearizable before the budget ran out.
        public let partitionsChecked: Int
        /// Partitions in the history.
        public let partitions: Int
        /// The partition being checked when the budget ran out.
        public let partition: String

        @usableFromInline
        init(budget: String, steps: Int, partitionsChecked: Int, partitions: Int, partition: String) {
            (self.budget, self.steps, self.partitionsChecked, self.partitions, self.partition) = (budget, steps, partitionsChecked, partitions, partition)
        }

        /// One line saying where the check stopped.
        public var description: String {
            "linearizability unknown: budget \(budget) spent after \(steps) steps, in \(partition) "
                + "(\(partitionsChecked) of \(partitions) partitions checked, all linearizable)"
        }
    }

    /// `true` only for ``linearizable``.
    public var isLinearizable: Bool {
        if case .linearizable = self { return true }
        return false
    }

    /// The violation, for ``notLinearizable(_:)``.
    public var violation: LinearizabilityViolation<Input, Output>? {
        if case .notLinearizable(let violation) = self { return violation }
        return nil
    }

    /// `linearizable`, the violation's report, or where the budget ran out.
    public var description: String {
        switch self {
        case .linearizable: "linearizable"
        case .notLinearizable(let violation): violation.description
        case .unknown(let exhausted): exhausted.description
        }
    }
}

extension LinearizabilityResult: Sendable where Input: Sendable, Output: Sendable {}

/// Why a history is not linearizable, found in one partition: the operations of that partition,
/// the longest order of them the search could build (the linearizable prefix), and the
/// operation that had to come next but could not, with what each candidate would have done.
///
/// The prefix is one of the longest found; it is a witness that explains the failure, not the
/// only possible one. Print the value (`description`) for the report.
public struct LinearizabilityViolation<Input, Output>: CustomStringConvertible {
    /// An operation that could have come right after the prefix.
    public struct Candidate: Sendable, Hashable {
        /// The operation's ``LinearizabilityHistory/Operation/id``.
        public let operation: Int
        /// Whether the model allows it right after the prefix: `false` when its output is
        /// impossible there; `true` when it is possible there but every order continuing with it
        /// fails (or, for an operation with an unknown outcome, taking it there changes
        /// nothing).
        public let fits: Bool
    }

    /// The partition, as the model describes it (`key x`).
    public let partition: String
    /// Every operation of the partition, in history order.
    public let operations: [LinearizabilityHistory<Input, Output>.Operation]
    /// Ids of the operations of the longest linearizable order found, in that order.
    public let linearizedPrefix: [Int]
    /// The model state after the prefix, as the model describes it.
    public let stateAfterPrefix: String
    /// The id of the returned operation that had to take effect next (its completion comes
    /// before the invocation of every operation not yet tried) and could not.
    public let blocked: Int
    /// The operations that could have come next, with what the model said of each.
    public let candidates: [Candidate]
    let labels: [Int: String]

    /// A rendering of operation `id`: `#3 client 2 [10, 20] get(x) -> 1` (`[10, ?]` for an
    /// unknown outcome).
    public func describe(operation id: Int) -> String {
        guard let operation = operations.first(where: { $0.id == id }) else { return "#\(id)" }
        let end = operation.completion.map { "\($0)" } ?? "?"
        return "#\(id) client \(operation.client) [\(operation.invocation), \(end)] \(labels[id] ?? "")"
    }

    /// The report: the blocked operation, the state after the prefix, each candidate, the end of
    /// the prefix, and the operations of the partition around the failure (at most 40 lines of
    /// each; `operations` holds them all).
    public var description: String {
        let limit = 40
        var lines = ["not linearizable: \(partition) (\(operations.count) operations)"]
        lines.append("operation \(describe(operation: blocked)) must take effect by its completion, but cannot:")
        lines.append("after the longest linearizable order found (\(linearizedPrefix.count) operations), the state is \(stateAfterPrefix), and")
        for candidate in candidates.prefix(limit) {
            let why = candidate.fits ? "possible here, but no order continuing with it works" : "cannot return that in this state"
            lines.append("  \(describe(operation: candidate.operation)): \(why)")
        }
        if candidates.count > limit { lines.append("  ... and \(candidates.count - limit) more candidates") }
        lines.append("the order found (last \(min(limit, linearizedPrefix.count))):")
        if linearizedPrefix.count > limit { lines.append("  ... \(linearizedPrefix.count - limit) earlier operations") }
        for id in linearizedPrefix.suffix(limit) { lines.append("  \(describe(operation: id))") }
        lines.append("operations of \(partition) around the failure:")
        for operation in nearby(limit) { lines.append("  \(describe(operation: operation.id))") }
        return lines.joined(separator: "\n")
    }

    /// Up to `limit` operations of the partition whose intervals come closest to the blocked
    /// operation's, in history order.
    private func nearby(_ limit: Int) -> [LinearizabilityHistory<Input, Output>.Operation] {
        guard operations.count > limit, let b = operations.first(where: { $0.id == blocked }) else { return operations }
        let (lo, hi) = (b.invocation, b.completion ?? .max)
        func distance(_ op: LinearizabilityHistory<Input, Output>.Operation) -> Int64 {
            let end = op.completion ?? .max
            if end < lo { return lo - end }
            if op.invocation > hi { return op.invocation - hi }
            return 0
        }
        let chosen = operations.sorted { (distance($0), $0.id) < (distance($1), $1.id) }.prefix(limit).map(\.id)
        let keep = Set(chosen)
        return operations.filter { keep.contains($0.id) }
    }
}

extension LinearizabilityViolation: Sendable where Input: Sendable, Output: Sendable {}
