/// The sequential specification of a key-value register: `get`, `put`, `delete` and
/// compare-and-swap on independent keys, checked key by key.
///
/// Each key holds a value or nothing. Outputs:
///
/// | input | output |
/// |-------|--------|
/// | ``Input/get(key:)`` | ``Output/value(_:)``: the value, `nil` when absent |
/// | ``Input/put(key:value:)`` | ``Output/ok`` |
/// | ``Input/delete(key:)`` | ``Output/ok`` (also when the key was absent) |
/// | ``Input/compareAndSwap(key:expected:new:)`` | ``Output/swapped(_:)``: `true` when the key held `expected` (`nil`: was absent) and now holds `new` |
///
/// Any other output (a `get` answered ``Output/ok``, say) is a violation. Operations that failed
/// in a way the client knows had no effect do not belong in the history at all; operations whose
/// effect is unknown are recorded with outcome ``LinearizabilityHistory/Outcome/unknown``.
///
/// A history is easiest to check, and a violation easiest to read, when every write writes a
/// value no other write uses.
public struct KeyValueModel<Key: Hashable & Sendable, Value: Hashable & Sendable>: LinearizabilityModel {
    /// A request to the store.
    public enum Input: Hashable, Sendable {
        /// Reads `key`.
        case get(key: Key)
        /// Sets `key` to `value`.
        case put(key: Key, value: Value)
        /// Removes `key`.
        case delete(key: Key)
        /// Sets `key` to `new` if it holds `expected` (`nil`: if it is absent).
        case compareAndSwap(key: Key, expected: Value?, new: Value)

        /// The key the request acts on.
        @inlinable
        public var key: Key {
            switch self {
            case .get(let key), .put(let key, _), .delete(let key), .compareAndSwap(let key, _, _): key
            }
        }
    }

    /// An answer of the store.
    public enum Output: Hashable, Sendable {
        /// The answer to a get: the value, or `nil` when the key is absent.
        case value(Value?)
        /// The answer to a put or a delete.
        case ok
        /// The answer to a compare-and-swap: whether it swapped.
        case swapped(Bool)
    }

    /// A key-value model.
    public init() {}

    /// Every key starts absent.
    @inlinable
    public var initialState: Value? { nil }

    /// Whether `output` is the answer `input` gives in `state`, and the state after it.
    @inlinable
    public func step(_ state: Value?, _ input: Input, _ output: Output) -> Value?? {
        let (expected, next) = apply(state, input)
        return expected == output ? .some(next) : .none
    }

    /// The state after `input` in `state`.
    @inlinable
    public func step(_ state: Value?, _ input: Input) -> Value? { apply(state, input).next }

    /// Each key is checked on its own.
    @inlinable
    public func partition(of input: Input) -> Key { input.key }

    /// `get(x)`, `put(x, 1)`, `delete(x)`, `cas(x, 1 -> 2)` (`-` for absent).
    public func describe(input: Input) -> String {
        switch input {
        case .get(let key): "get(\(key))"
        case .put(let key, let value): "put(\(key), \(value))"
        case .delete(let key): "delete(\(key))"
        case .compareAndSwap(let key, let expected, let new): "cas(\(key), \(Self.show(expected)) -> \(new))"
        }
    }

    /// `1`, `-` (absent), `ok`, `swapped`, `not swapped`.
    public func describe(output: Output) -> String {
        switch output {
        case .value(let value): Self.show(value)
        case .ok: "ok"
        case .swapped(let swapped): swapped ? "swapped" : "not swapped"
        }
    }

    /// The value, or `-` when absent.
    public func describe(state: Value?) -> String { Self.show(state) }

    /// `key x`.
    public func describe(partition: Key) -> String { "key \(partition)" }

    private static func show(_ value: Value?) -> String { value.map { "\($0)" } ?? "-" }

    @inlinable
    func apply(_ state: Value?, _ input: Input) -> (output: Output, next: Value?) {
        switch input {
        case .get: (.value(state), state)
        case .put(_, let value): (.ok, value)
        case .delete: (.ok, nil)
        case .compareAndSwap(_, let expected, let new): state == expected ? (.swapped(true), new) : (.swapped(false), state)
        }
    }
}
