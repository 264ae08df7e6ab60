import Raft
import RaftTestKit
import Testing

typealias KV = KeyValueModel<String, String>
typealias KVHistory = LinearizabilityHistory<KV.Input, KV.Output>

/// A history written by hand: `returned` for an operation that came back, `unknown` for one that
/// never did.
struct HandHistory {
    var history = KVHistory()

    mutating func returned(_ client: Int, _ input: KV.Input, _ invocation: Int64, _ completion: Int64, _ output: KV.Output) {
        // The hand-written times are in order; a mistake here should fail the test, not hide.
        do { try history.append(client: client, input, invokedAt: invocation, outcome: .returned(output, at: completion)) } catch {
            Issue.record("bad hand-written operation: \(error)")
        }
    }

    mutating func unknown(_ client: Int, _ input: KV.Input, _ invocation: Int64) {
        do { try history.append(client: client, input, invokedAt: invocation, outcome: .unknown) } catch {
            Issue.record("bad hand-written operation: \(error)")
        }
    }

    func check() -> LinearizabilityResult<KV.Input, KV.Output> { LinearizabilityChecker(model: KV()).check(history) }
}

func put(_ key: String, _ value: String) -> KV.Input { .put(key: key, value: value) }
func get(_ key: String) -> KV.Input { .get(key: key) }
func cas(_ key: String, _ expected: String?, _ new: String) -> KV.Input { .compareAndSwap(key: key, expected: expected, new: new) }
func value(_ v: String?) -> KV.Output { .value(v) }

/// The linearizability checker on hand-written histories: each violation kind, each way
/// concurrency and unknown outcomes make a history linearizable, and the report.
@Suite("Linearizability checker")
struct LinearizabilityTests {
    @Test("A sequential history that follows the model is linearizable")
    func sequential() {
        var h = HandHistory()
        h.returned(1, get("x"), 0, 1, value(nil))
        h.returned(1, put("x", "1"), 2, 3, .ok)
        h.returned(2, get("x"), 4, 5, value("1"))
        h.returned(2, cas("x", "1", "2"), 6, 7, .swapped(true))
        h.returned(1, cas("x", "1", "3"), 8, 9, .swapped(false))
        h.returned(1, .delete(key: "x"), 10, 11, .ok)
        h.returned(2, get("x"), 12, 13, value(nil))
        h.returned(2, cas("x", nil, "4"), 14, 15, .swapped(true))
        #expect(h.check().isLinearizable)
    }

    @Test("A stale read (the value before a completed write) is a violation")
    func staleRead() throws {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 1, .ok)
        h.returned(1, put("x", "2"), 2, 3, .ok)
        h.returned(2, get("x"), 4, 5, value("1"))
        let v = try #require(h.check().violation)
        #expect(v.partition == "key x")
        #expect(v.blocked == 2)
        #expect(v.linearizedPrefix == [0, 1])
        #expect(v.stateAfterPrefix == "2")
        #expect(v.candidates.map(\.operation) == [2])
        #expect(v.candidates.allSatisfy { !$0.fits })
    }

    @Test("A lost write (acknowledged, then not seen) is a violation")
    func lostWrite() throws {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 1, .ok)
        h.returned(2, put("x", "2"), 0, 1, .ok)
        h.returned(3, get("x"), 2, 3, value("1"))
        h.returned(3, get("x"), 4, 5, value(nil))
        let v = try #require(h.check().violation)
        #expect(v.blocked == 3)
    }

    @Test("A read of a value never written is a violation")
    func neverWritten() throws {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 10, .ok)
        h.returned(2, get("x"), 1, 9, value("7"))
        let v = try #require(h.check().violation)
        #expect(v.blocked == 1)
    }

    @Test("A compare-and-swap applied twice is a violation")
    func casAppliedTwice() throws {
        var h = HandHistory()
        h.returned(1, put("x", "0"), 0, 1, .ok)
        // Two concurrent swaps from 0 to 1 cannot both succeed.
        h.returned(2, cas("x", "0", "1"), 2, 10, .swapped(true))
        h.returned(3, cas("x", "0", "1"), 3, 9, .swapped(true))
        #expect(!h.check().isLinearizable)
        // A retry that the store applied again after the first took effect.
        var retried = HandHistory()
        retried.returned(1, put("x", "0"), 0, 1, .ok)
        retried.returned(2, cas("x", "0", "1"), 2, 3, .swapped(true))
        retried.returned(2, cas("x", "0", "1"), 4, 5, .swapped(true))
        #expect(!retried.check().isLinearizable)
    }

    @Test("Overlapping operations may take effect in any order inside their intervals")
    func overlapping() {
        // Two concurrent writes: reads see the second, then the first.
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 10, .ok)
        h.returned(2, put("x", "2"), 0, 10, .ok)
        h.returned(3, get("x"), 1, 2, value("2"))
        h.returned(3, get("x"), 3, 4, value("1"))
        h.returned(4, get("x"), 11, 12, value("1"))
        #expect(h.check().isLinearizable)
        // A read concurrent with a write sees the old value, a later one the new.
        var w = HandHistory()
        w.returned(1, put("x", "1"), 0, 10, .ok)
        w.returned(2, get("x"), 1, 2, value(nil))
        w.returned(3, get("x"), 3, 4, value("1"))
        w.returned(2, get("x"), 5, 6, value("1"))
        #expect(w.check().isLinearizable)
        // ... but never the old value again after seeing the new.
        w.returned(3, get("x"), 7, 8, value(nil))
        #expect(!w.check().isLinearizable)
    }

    @Test("Intervals that touch at one instant are concurrent")
    func touchingIntervals() {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 5, .ok)
        h.returned(2, get("x"), 5, 6, value(nil))
        #expect(h.check().isLinearizable)
        var apart = HandHistory()
        apart.returned(1, put("x", "1"), 0, 5, .ok)
        apart.returned(2, get("x"), 6, 7, value(nil))
        #expect(!apart.check().isLinearizable)
    }

    @Test("An unknown outcome may take effect any time after its invocation")
    func unknownTakesEffect() {
        var h = HandHistory()
        h.unknown(1, put("x", "1"), 0)
        h.returned(2, get("x"), 5, 6, value(nil))
        h.returned(2, get("x"), 7, 8, value("1"))
        h.returned(3, get("x"), 100, 101, value("1"))
        #expect(h.check().isLinearizable)
        // Without the timed-out write the same reads are impossible.
        var without = HandHistory()
        without.returned(2, get("x"), 5, 6, value(nil))
        without.returned(2, get("x"), 7, 8, value("1"))
        #expect(!without.check().isLinearizable)
    }

    @Test("An unknown outcome may never take effect")
    func unknownNeverTakesEffect() {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 1, .ok)
        h.unknown(2, put("x", "2"), 2)
        h.unknown(3, cas("x", "1", "3"), 2)
        h.returned(1, get("x"), 3, 4, value("1"))
        h.returned(1, get("x"), 50, 51, value("1"))
        #expect(h.check().isLinearizable)
    }

    @Test("An unknown outcome takes effect once, and not before its invocation")
    func unknownBounds() {
        var before = HandHistory()
        before.returned(1, get("x"), 0, 2, value("1"))
        before.unknown(2, put("x", "1"), 3)
        #expect(!before.check().isLinearizable)
        var twice = HandHistory()
        twice.unknown(1, put("x", "1"), 0)
        twice.returned(2, get("x"), 1, 2, value("1"))
        twice.returned(2, put("x", "2"), 3, 4, .ok)
        twice.returned(2, get("x"), 5, 6, value("2"))
        #expect(twice.check().isLinearizable)  // the write may come after the first read
        twice.returned(2, get("x"), 7, 8, value("1"))
        #expect(!twice.check().isLinearizable)  // but it cannot come twice
    }

    @Test("Keys are checked apart and the report names the offending key")
    func perKey() throws {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 1, .ok)
        h.returned(1, put("y", "1"), 2, 3, .ok)
        h.returned(2, get("x"), 4, 5, value("1"))
        h.returned(2, get("y"), 6, 7, value(nil))
        h.returned(2, get("z"), 8, 9, value(nil))
        let v = try #require(h.check().violation)
        #expect(v.partition == "key y")
        #expect(v.operations.map(\.id) == [1, 3])
        #expect(v.blocked == 3)
    }

    @Test("The report names the operation, the state, the candidates and the order found")
    func report() throws {
        var h = HandHistory()
        h.returned(1, put("x", "1"), 0, 1, .ok)
        h.returned(1, put("x", "2"), 2, 3, .ok)
        h.unknown(3, get("x"), 2)
        h.returned(2, get("x"), 4, 5, value("1"))
        let result = h.check()
        let text = "\(result)"
        #expect(text.contains("not linearizable: key x (4 operations)"))
        #expect(text.contains("operation #3 client 2 [4, 5] get(x) -> 1 must take effect by its completion, but cannot"))
        #expect(text.contains("the state is 2"))
        #expect(text.contains("#3 client 2 [4, 5] get(x) -> 1: cannot return that in this state"))
        #expect(text.contains("#2 client 3 [2, ?] get(x) -> ?: possible here, but no order continuing with it works"))
        #expect(text.contains("#1 client 1 [2, 3] put(x, 2) -> ok"))
        // Deterministic: the same history gives the same report.
        #expect("\(h.check())" == text)
    }

    @Test("A step budget that runs out gives unknown, not a verdict")
    func budget() throws {
        let history = KV.randomHistory(seed: 1, operations: 2_000, keys: 4, clients: 5)
        let limited = LinearizabilityChecker(model: KV(), budget: .steps(100)).check(history)
        guard case .unknown(let exhausted) = limited else {
            Issue.record("expected unknown, got \(limited)")
            return
        }
        #expect(exhausted.steps == 100)
        #expect("\(limited)".contains("budget steps(100) spent after 100 steps"))
        #expect(LinearizabilityChecker(model: KV(), budget: .time(.seconds(60))).check(history).isLinearizable)
    }

    @Test("Appending an operation that returned before its invocation throws")
    func badHistory() {
        var history = KVHistory()
        #expect(throws: RaftError.self) {
            try history.append(client: 1, get("x"), invokedAt: 10, outcome: .returned(value(nil), at: 9))
        }
        #expect(history.count == 0)
    }
}
