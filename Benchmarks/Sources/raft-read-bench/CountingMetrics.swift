import CoreMetrics
import Synchronization

/// A swift-metrics factory that keeps a running total per counter and a count of records per
/// timer, by label and `node` dimension; everything else is dropped. The benchmark reads the
/// totals before and after each measured interval.
final class CountingMetrics: MetricsFactory {
    final class Total: CounterHandler, TimerHandler {
        let value = Atomic<Int64>(0)
        func increment(by amount: Int64) { value.add(amount, ordering: .relaxed) }
        func reset() { value.store(0, ordering: .relaxed) }
        func recordNanoseconds(_ duration: Int64) { value.add(1, ordering: .relaxed) }
    }

    final class Ignored: RecorderHandler, MeterHandler, FloatingPointCounterHandler {
        func record(_ value: Int64) {}
        func record(_ value: Double) {}
        func set(_ value: Int64) {}
        func set(_ value: Double) {}
        func increment(by: Double) {}
        func decrement(by: Double) {}
        func reset() {}
    }

    private let totals = Mutex<[String: Total]>([:])

    static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        label + "{" + dimensions.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    private func total(_ label: String, _ dimensions: [(String, String)]) -> Total {
        totals.withLock { t in
            let k = Self.key(label, dimensions)
            if let existing = t[k] { return existing }
            let made = Total()
            t[k] = made
            return made
        }
    }

    /// The running total of counter `label` (or the number of records of timer `label`) of
    /// node `node`; zero if it was never made.
    func value(_ label: String, node: String) -> Int64 {
        totals.withLock { $0[Self.key(label, [("node", node)])]?.value.load(ordering: .relaxed) ?? 0 }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { total(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { total(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { Ignored() }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Ignored() }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Ignored() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
