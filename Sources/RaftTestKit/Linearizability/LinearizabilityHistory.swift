import Raft

/// A record of operations that clients ran against a service, concurrently, each with the time it
/// was invoked and the time its answer arrived (or no answer at all), ready to be checked by a
/// ``LinearizabilityChecker``.
///
/// Times are plain integers on one clock that every client shares: nanoseconds of a monotonic
/// clock, simulated ticks, anything that only moves forward. What matters is their order. An
/// operation *precedes* another only when it returned strictly before the other was invoked; two
/// operations whose intervals touch (one returns at `t`, the other is invoked at `t`) count as
/// concurrent, so a coarse clock can never make a correct service look wrong.
///
/// Build a history with ``append(client:_:invokedAt:outcome:)`` or, while clients run, with a
/// ``HistoryRecorder``.
///
/// ```swift
/// var history = LinearizabilityHistory<KeyValueModel<String, String>.Input, KeyValueModel<String, String>.Output>()
/// try history.append(client: 1, .put(key: "x", value: "1"), invokedAt: 0, outcome: .returned(.ok, at: 10))
/// try history.append(client: 2, .get(key: "x"), invokedAt: 5, outcome: .returned(.value("1"), at: 12))
/// try history.append(client: 3, .put(key: "x", value: "2"), invokedAt: 13, outcome: .unknown)
/// ```
public struct LinearizabilityHistory<Input, Output> {
    /// How an operation ended, as far as its client knows.
    public enum Outcome {
        /// The client received `output` at time `at`. The operation took effect at one instant
        /// between its invocation and `at` (both included).
        case returned(Output, at: Int64)
        /// The client never learned what happened (a timeout, a lost connection, a crash): the
        /// operation may have taken effect at any instant after its invocation, or never.
        ///
        /// An operation the service definitely refused (it cannot have taken effect) should be
        /// left out of the history instead (``HistoryRecorder/discard(_:)``).
        case unknown
    }

    /// One invocation of the service and what came back.
    public struct Operation {
        /// The operation's position in ``LinearizabilityHistory/operations``, used in reports.
        public let id: Int
        /// The client (process, connection, task) that issued it. Only used in reports: a
        /// client may have several operations in flight.
        public let client: Int
        /// What the client asked for.
        public let input: Input
        /// When the client invoked it.
        public let invocation: Int64
        /// When and what it returned, or ``Outcome/unknown``.
        public let outcome: Outcome

        /// The output, when the operation returned.
        public var output: Output? {
            if case .returned(let output, _) = outcome { return output }
            return nil
        }

        /// The completion time, when the operation returned.
        public var completion: Int64? {
            if case .returned(_, let at) = outcome { return at }
            return nil
        }
    }

    /// Every operation, in the order they were added; an operation's ``Operation/id`` is its
    /// index here.
    public private(set) var operations: [Operation] = []

    /// An empty history.
    public init() {}

    /// The number of operations.
    public var count: Int { operations.count }

    /// Adds one operation and returns its id.
    ///
    /// - Throws: ``RaftError/Code/invalidArgument`` when the operation returned before it was
    ///   invoked; the history is unchanged then.
    @discardableResult
    public mutating func append(client: Int, _ input: Input, invokedAt invocation: Int64, outcome: Outcome) throws(RaftError) -> Int {
        if case .returned(_, let at) = outcome, at < invocation {
            throw RaftError(
                .invalidArgument,
                "linearizability history: an operation of client \(client) returned at \(at), before its invocation at \(invocation)")
        }
        return appendChecked(client: client, input, invokedAt: invocation, outcome: outcome)
    }

    /// Adds an operation whose completion is known not to precede its invocation.
    @discardableResult
    mutating func appendChecked(client: Int, _ input: Input, invokedAt invocation: Int64, outcome: Outcome) -> Int {
        let id = operations.count
        operations.append(Operation(id: id, client: client, input: input, invocation: invocation, outcome: outcome))
        return id
    }
}

extension LinearizabilityHistory: Sendable where Input: Sendable, Output: Sendable {}
extension LinearizabilityHistory.Outcome: Sendable where Input: Sendable, Output: Sendable {}
extension LinearizabilityHistory.Operation: Sendable where Input: Sendable, Output: Sendable {}
extension LinearizabilityHistory.Outcome: Equatable where Output: Equatable {}
extension LinearizabilityHistory.Operation: Equatable where Input: Equatable, Output: Equatable {}
