import Raft
import RaftTestKit
import Synchronization
import Testing

/// The checker on generated histories: linearizable by construction (they must pass), the same
/// with one guaranteed violation added (they must fail), a large one, a user-defined model, and
/// the recorder.
@Suite("Linearizability checker: generated histories, models, recorder")
struct LinearizabilityRandomTests {
    /// (keys, clients, unknown fraction) of the generated histories.
    static let shapes: [(keys: Int, clients: Int, unknown: Double)] = [(1, 3, 0), (3, 6, 0), (2, 4, 0.1), (1, 3, 0.05)]

    @Test("Histories of a sequential store with artificial concurrency are linearizable", arguments: 0..<shapes.count)
    func generatedPass(shape: Int) {
        let (keys, clients, unknown) = Self.shapes[shape]
        for seed in UInt64(0)..<100 {
            let history = KV.randomHistory(seed: seed, operations: 200, keys: keys, clients: clients, unknownFraction: unknown)
            let result = LinearizabilityChecker(model: KV()).check(history)
            #expect(result.isLinearizable, "seed \(seed), shape \(shape): \(result)")
        }
    }

    @Test("The same histories with one violation added are not", arguments: 0..<shapes.count)
    func mutatedFail(shape: Int) throws {
        let (keys, clients, unknown) = Self.shapes[shape]
        var mutated = 0
        for seed in UInt64(0)..<40 {
            let history = KV.randomHistory(seed: seed, operations: 100, keys: keys, clients: clients, unknownFraction: unknown)
            for mutant in try Self.mutants(of: history) {
                let result = LinearizabilityChecker(model: KV()).check(mutant.history)
                #expect(!result.isLinearizable, "seed \(seed), shape \(shape), \(mutant.kind) passed")
                mutated += 1
            }
        }
        // Every seed yields mutants of every kind, or this test proves little.
        #expect(mutated >= 90)
    }

    @Test("A history of 20,000 operations over 50 keys checks")
    func large() {
        let history = KV.randomHistory(seed: 42, operations: 20_000, keys: 50, clients: 16, unknownFraction: 0.02)
        #expect(history.count == 20_000)
        let result = LinearizabilityChecker(model: KV()).check(history)
        #expect(result.isLinearizable, "\(result)")
    }

    /// Up to three histories that cannot be linearizable, made from a linearizable one:
    /// - a completed get answers a value nobody wrote;
    /// - after everything, a put of a fresh value and then a get answering a value a completed
    ///   write wrote earlier (a stale read: only that write ever wrote it, and it is over);
    /// - after everything, a successful swap repeated (applied twice: its expected value was
    ///   written once, and the swap itself replaced it).
    static func mutants(of history: KVHistory) throws -> [(kind: String, history: KVHistory)] {
        let end = (history.operations.map { $0.completion ?? $0.invocation }.max() ?? 0) + 1
        var result: [(String, KVHistory)] = []
        if let read = history.operations.first(where: { if case .get = $0.input { $0.output != nil } else { false } }) {
            var copy = KVHistory()
            for op in history.operations {
                let outcome: KVHistory.Outcome = op.id == read.id ? .returned(value("never written"), at: op.completion ?? end) : op.outcome
                try copy.append(client: op.client, op.input, invokedAt: op.invocation, outcome: outcome)
            }
            result.append(("never-written read", copy))
        }
        let writes = history.operations.compactMap { op -> (key: String, value: String)? in
            switch (op.input, op.output) {
            case (.put(let key, let value), .ok?), (.compareAndSwap(let key, _, let value), .swapped(true)?): (key, value)
            default: nil
            }
        }
        if let write = writes.first {
            var copy = history
            try copy.append(client: 99, put(write.key, "fresh"), invokedAt: end, outcome: .returned(.ok, at: end + 1))
            try copy.append(client: 99, get(write.key), invokedAt: end + 2, outcome: .returned(value(write.value), at: end + 3))
            result.append(("stale read", copy))
        }
        let swap = history.operations.first {
            if case .compareAndSwap(_, _?, _) = $0.input { $0.output == .swapped(true) } else { false }
        }
        if let swap {
            var copy = history
            try copy.append(client: 99, swap.input, invokedAt: end, outcome: .returned(.swapped(true), at: end + 1))
            result.append(("swap applied twice", copy))
        }
        return result
    }

    /// A FIFO queue, to show a user-defined model without partitions.
    struct QueueModel: LinearizabilityModel {
        enum Input: Sendable { case enqueue(Int), dequeue }
        enum Output: Sendable, Equatable { case ok, dequeued(Int?) }
        var initialState: [Int] { [] }
        func step(_ state: [Int], _ input: Input, _ output: Output) -> [Int]? {
            switch (input, output) {
            case (.enqueue(let x), .ok): state + [x]
            case (.dequeue, .dequeued(let x)): state.first == x ? Array(state.dropFirst()) : nil
            default: nil
            }
        }
        func step(_ state: [Int], _ input: Input) -> [Int] {
            if case .enqueue(let x) = input { return state + [x] }
            return Array(state.dropFirst())
        }
    }

    @Test("A user-defined model (a FIFO queue) is checked as one partition")
    func customModel() throws {
        typealias H = LinearizabilityHistory<QueueModel.Input, QueueModel.Output>
        var h = H()
        try h.append(client: 1, .enqueue(1), invokedAt: 0, outcome: .returned(.ok, at: 10))
        try h.append(client: 2, .enqueue(2), invokedAt: 0, outcome: .returned(.ok, at: 10))
        try h.append(client: 3, .dequeue, invokedAt: 11, outcome: .returned(.dequeued(2), at: 12))
        try h.append(client: 3, .dequeue, invokedAt: 13, outcome: .returned(.dequeued(1), at: 14))
        #expect(LinearizabilityChecker(model: QueueModel()).check(h).isLinearizable)
        try h.append(client: 3, .dequeue, invokedAt: 15, outcome: .returned(.dequeued(1), at: 16))
        let v = try #require(LinearizabilityChecker(model: QueueModel()).check(h).violation)
        #expect(v.partition == "whole history")
        #expect(v.blocked == 4)
        #expect(v.stateAfterPrefix == "[]")
    }

    /// A correct store: every operation under one lock.
    final class LockedStore: Sendable {
        let values = Mutex<[String: String]>([:])
    }

    @Test("Clients recording concurrently into one recorder produce a checkable history")
    func recorderConcurrent() async throws {
        let recorder = HistoryRecorder<KV.Input, KV.Output>()
        let store = LockedStore()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<8 {
                group.addTask {
                    for n in 0..<100 {
                        let input: KV.Input = n % 2 == 0 ? put("k\(n % 3)", "c\(client)-\(n)") : get("k\(n % 3)")
                        let call = recorder.invoke(client: client, input)
                        let output: KV.Output = store.values.withLock { store in
                            switch input {
                            case .put(let key, let v):
                                store[key] = v
                                return .ok
                            default: return .value(store[input.key])
                            }
                        }
                        try recorder.complete(call, output)
                    }
                }
            }
            try await group.waitForAll()
        }
        // One call left without an answer: an unknown outcome.
        _ = recorder.invoke(client: 9, put("k0", "lost"))
        let history = recorder.history()
        #expect(history.count == 801)
        #expect(history.operations.last?.outcome == .unknown)
        let result = LinearizabilityChecker(model: KV()).check(history)
        #expect(result.isLinearizable, "\(result)")
    }

    @Test("A store that answers reads from a stale cache is caught through the recorder")
    func recorderStaleCache() throws {
        let recorder = HistoryRecorder<KV.Input, KV.Output>()
        var store: [String: String] = [:]
        var cache: [String: String] = [:]
        for n in 0..<10 {
            let w = recorder.invoke(client: 1, put("x", "\(n)"), at: Int64(4 * n))
            store["x"] = "\(n)"
            if n % 3 == 0 { cache = store }  // the cache is refreshed every third write only
            try recorder.complete(w, .ok, at: Int64(4 * n + 1))
            let r = recorder.invoke(client: 2, get("x"), at: Int64(4 * n + 2))
            try recorder.complete(r, .value(cache["x"]), at: Int64(4 * n + 3))
        }
        let v = try #require(LinearizabilityChecker(model: KV()).check(recorder.history()).violation)
        #expect(v.blocked == 3)  // the read after the second write, answered "0"
    }

    @Test("The recorder refuses a second completion, a foreign call and a completion before the invocation")
    func recorderErrors() throws {
        let recorder = HistoryRecorder<KV.Input, KV.Output>()
        let other = HistoryRecorder<KV.Input, KV.Output>()
        let call = recorder.invoke(client: 1, get("x"), at: 10)
        #expect(throws: RaftError.self) { try recorder.complete(call, value(nil), at: 9) }
        #expect(throws: RaftError.self) { try other.complete(call, value(nil), at: 11) }
        try recorder.complete(call, value(nil), at: 11)
        #expect(throws: RaftError.self) { try recorder.complete(call, value(nil), at: 12) }
        #expect(throws: RaftError.self) { try recorder.discard(call) }
        let refused = recorder.invoke(client: 2, put("x", "1"), at: 12)
        try recorder.discard(refused)
        #expect(throws: RaftError.self) { try recorder.complete(refused, .ok, at: 13) }
        let history = recorder.history()
        #expect(history.count == 1)
        #expect(history.operations.first?.outcome == .returned(value(nil), at: 11))
    }
}
