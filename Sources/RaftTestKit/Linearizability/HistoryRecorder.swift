import Raft
import Synchronization

/// Records a ``LinearizabilityHistory`` while many clients run at once.
///
/// Each client calls ``invoke(client:_:at:)`` just before it sends a request and
/// ``complete(_:_:at:)`` as soon as the answer arrives. A call that is never completed (the
/// client timed out, crashed or gave up) stays in the history with outcome
/// ``LinearizabilityHistory/Outcome/unknown``; a call the service definitely refused is removed
/// with ``discard(_:)``. ``history()`` returns what was recorded so far.
///
/// Times come from the caller (simulated ticks, a `ManualClock`) or, with the overloads without
/// `at:`, from a `ContinuousClock` read under the recorder's lock, in nanoseconds since the
/// recorder was created. Use one kind of time per recorder.
///
/// ```swift
/// let recorder = HistoryRecorder<KeyValueModel<String, String>.Input, KeyValueModel<String, String>.Output>()
/// let call = recorder.invoke(client: 7, .get(key: "x"))
/// let value = try await service.get("x")
/// try recorder.complete(call, .value(value))
/// ```
///
/// The recorder is `Sendable`: one instance is shared by every client task; each call takes a
/// `Mutex` for a few instructions.
public final class HistoryRecorder<Input: Sendable, Output: Sendable>: Sendable {
    /// A recorded invocation, to be completed (or discarded) by the client that made it.
    public struct Call: Sendable, Hashable {
        let recorder: ObjectIdentifier
        let slot: Int
    }

    private enum Slot {
        case invoked(client: Int, input: Input, at: Int64)
        case returned(client: Int, input: Input, at: Int64, output: Output, completion: Int64)
        case discarded
    }

    private let slots = Mutex<[Slot]>([])
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant

    /// A recorder with nothing recorded.
    public init() { start = clock.now }

    /// Records that `client` invokes `input` at `time` and returns the call to complete.
    public func invoke(client: Int, _ input: Input, at time: Int64) -> Call {
        let slot = slots.withLock { slots in
            slots.append(.invoked(client: client, input: input, at: time))
            return slots.count - 1
        }
        return Call(recorder: ObjectIdentifier(self), slot: slot)
    }

    /// Records that `client` invokes `input` now (nanoseconds since the recorder was created).
    public func invoke(client: Int, _ input: Input) -> Call {
        let slot = slots.withLock { slots in
            slots.append(.invoked(client: client, input: input, at: elapsed()))
            return slots.count - 1
        }
        return Call(recorder: ObjectIdentifier(self), slot: slot)
    }

    /// Records that `call` returned `output` at `time`.
    ///
    /// - Throws: ``RaftError/Code/invalidArgument`` when `call` belongs to another recorder, was
    ///   already completed or discarded, or `time` is before its invocation. Nothing is recorded
    ///   then.
    public func complete(_ call: Call, _ output: Output, at time: Int64) throws(RaftError) {
        try slots.withLock { (slots) throws(RaftError) in try finish(call, output, time, &slots) }
    }

    /// Records that `call` returned `output` now (nanoseconds since the recorder was created).
    ///
    /// - Throws: ``RaftError/Code/invalidArgument`` as ``complete(_:_:at:)`` does.
    public func complete(_ call: Call, _ output: Output) throws(RaftError) {
        try slots.withLock { (slots) throws(RaftError) in try finish(call, output, elapsed(), &slots) }
    }

    /// Removes `call` from the history: the service definitely did not perform it (it refused
    /// the request before acting on it, say with `notLeader` from a node that never proposed
    /// it). A call whose effect is uncertain must not be discarded: leave it uncompleted.
    ///
    /// - Throws: ``RaftError/Code/invalidArgument`` when `call` belongs to another recorder or
    ///   was already completed or discarded.
    public func discard(_ call: Call) throws(RaftError) {
        try slots.withLock { (slots) throws(RaftError) in
            _ = try invoked(call, slots)
            slots[call.slot] = .discarded
        }
    }

    /// Everything recorded so far, in invocation order of recording; calls not completed yet
    /// have outcome ``LinearizabilityHistory/Outcome/unknown``.
    public func history() -> LinearizabilityHistory<Input, Output> {
        let snapshot = slots.withLock { $0 }
        var history = LinearizabilityHistory<Input, Output>()
        for slot in snapshot {
            // `finish` refused every completion before its invocation, so no check is needed.
            switch slot {
            case .invoked(let client, let input, let at):
                history.appendChecked(client: client, input, invokedAt: at, outcome: .unknown)
            case .returned(let client, let input, let at, let output, let completion):
                history.appendChecked(client: client, input, invokedAt: at, outcome: .returned(output, at: completion))
            case .discarded:
                continue
            }
        }
        return history
    }

    private func elapsed() -> Int64 {
        let (seconds, attoseconds) = (clock.now - start).components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    private func invoked(_ call: Call, _ slots: [Slot]) throws(RaftError) -> (client: Int, input: Input, at: Int64) {
        guard call.recorder == ObjectIdentifier(self), slots.indices.contains(call.slot) else {
            throw RaftError(.invalidArgument, "history recorder: the call was not made through this recorder")
        }
        guard case .invoked(let client, let input, let at) = slots[call.slot] else {
            throw RaftError(.invalidArgument, "history recorder: call \(call.slot) was already completed or discarded")
        }
        return (client, input, at)
    }

    private func finish(_ call: Call, _ output: Output, _ time: Int64, _ slots: inout [Slot]) throws(RaftError) {
        let (client, input, at) = try invoked(call, slots)
        guard time >= at else {
            throw RaftError(
                .invalidArgument,
                "history recorder: call \(call.slot) of client \(client) completed at \(time), before its invocation at \(at)")
        }
        slots[call.slot] = .returned(client: client, input: input, at: at, output: output, completion: time)
    }
}
