/// A sequential specification: what a service must behave like when its operations run one at a
/// time. A ``LinearizabilityChecker`` asks whether a concurrent history could be explained by
/// some order of its operations that this specification accepts and that respects real time.
///
/// A model is a pure function of its state. ``step(_:_:_:)`` says whether an operation may
/// return an output in a state and what state follows; ``step(_:_:)`` says what state follows when
/// the output is unknown (the client timed out). Both must be deterministic: the same state and
/// operation always give the same answer, or the checker's verdict means nothing.
///
/// States are compared and hashed to memoize the search, so keep them small and make equal states
/// compare equal (a sorted array rather than one in arrival order, when order does not matter).
///
/// When operations on different parts of the state never interact (keys of a key-value store),
/// return a ``partition(of:)`` for each input: each partition is checked on its own, which is
/// exponentially cheaper and still exact, because linearizability is local (Herlihy and Wing
/// 1990, theorem 1). With one state per partition, the model's state is the state of one
/// partition. Models that do not partition keep the default (``WholeHistory``).
///
/// ```swift
/// /// A counter that can be incremented and read.
/// struct CounterModel: LinearizabilityModel {
///     enum Input: Sendable { case increment, read }
///     var initialState: Int { 0 }
///     func step(_ state: Int, _ input: Input, _ output: Int) -> Int? {
///         switch input {
///         case .increment: return output == state + 1 ? state + 1 : nil  // returns the new value
///         case .read: return output == state ? state : nil
///         }
///     }
///     func step(_ state: Int, _ input: Input) -> Int {
///         input == .increment ? state + 1 : state
///     }
/// }
/// ```
public protocol LinearizabilityModel: Sendable {
    /// The state of one partition.
    associatedtype State: Hashable
    /// What a client asks for.
    associatedtype Input
    /// What the service answers.
    associatedtype Output
    /// Identifies a set of operations that can be checked independently of all others.
    associatedtype Partition: Hashable = WholeHistory

    /// The state of every partition before any operation.
    var initialState: State { get }

    /// The state after `input` took effect in `state` and returned `output`, or `nil` when the
    /// specification does not allow `output` in `state`.
    func step(_ state: State, _ input: Input, _ output: Output) -> State?

    /// The state after `input` took effect in `state`, for an operation whose output nobody saw.
    func step(_ state: State, _ input: Input) -> State

    /// The partition `input` belongs to. Every input of one partition must act on that
    /// partition's state only.
    func partition(of input: Input) -> Partition

    /// A short rendering of an input for failure reports, like `put(x, 1)`.
    func describe(input: Input) -> String
    /// A short rendering of an output for failure reports, like `ok`.
    func describe(output: Output) -> String
    /// A short rendering of a state for failure reports.
    func describe(state: State) -> String
    /// A short rendering of a partition for failure reports, like `key x`.
    func describe(partition: Partition) -> String
}

/// The partition of a model whose history is checked as one piece.
public struct WholeHistory: Hashable, Sendable, CustomStringConvertible {
    /// The one partition.
    public init() {}

    /// `whole history`.
    public var description: String { "whole history" }
}

extension LinearizabilityModel where Partition == WholeHistory {
    /// Every operation belongs to the one partition.
    public func partition(of input: Input) -> WholeHistory { WholeHistory() }
}

extension LinearizabilityModel {
    /// `String(describing:)` of the input.
    public func describe(input: Input) -> String { String(describing: input) }
    /// `String(describing:)` of the output.
    public func describe(output: Output) -> String { String(describing: output) }
    /// `String(describing:)` of the state.
    public func describe(state: State) -> String { String(describing: state) }
    /// `String(describing:)` of the partition.
    public func describe(partition: Partition) -> String { String(describing: partition) }
}
