// How long RaftTestKit's LinearizabilityChecker takes on key-value histories.
//
// For each size, a history that is linearizable by construction
// (KeyValueModel.randomHistory: clients against one sequential store, artificial concurrency,
// some outcomes unknown) is checked, then the same history with a stale read appended on one key,
// which the checker must reject. Each check runs --repeat times; the median time is printed.

import ArgumentParser
import BenchSupport
import RaftTestKit

/// The command-line options (`--help` prints them with their defaults).
struct Options: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("operations")], help: ArgumentHelp("History sizes, comma separated.", valueName: "list"))
    var sizes = IntList([10_000, 50_000])

    @Option(name: [.customShort("k"), .customLong("keys")], help: ArgumentHelp("Key counts, comma separated (one row per size and key count).", valueName: "list"))
    var keys = IntList([100])

    @Option(name: [.customShort("c"), .customLong("clients")], help: ArgumentHelp("Clients running at once.", valueName: "n"))
    var clients = 16

    @Option(name: [.customShort("u"), .customLong("unknown")], help: ArgumentHelp("Fraction of operations whose outcome is unknown (0 to 1).", valueName: "p"))
    var unknown = 0.02

    @Option(name: [.customShort("r"), .customLong("repeat")], help: ArgumentHelp("Checks per history; the median is printed.", valueName: "n"))
    var repeats = 3

    @Option(name: .customLong("seed"), help: ArgumentHelp("Seed of the generated histories.", valueName: "n"))
    var seed: UInt64 = 1

    func validate() throws {
        try requireAll(sizes, atLeast: 1, "--operations")
        try requireAll(keys, atLeast: 1, "--keys")
        try require(clients >= 1, "--clients must be at least 1")
        try require(unknown >= 0 && unknown <= 1, "--unknown must be between 0 and 1")
        try require(repeats >= 1, "--repeat must be at least 1")
    }
}

typealias KV = KeyValueModel<String, String>
typealias KVHistory = LinearizabilityHistory<KV.Input, KV.Output>

/// The median time of `repeats` checks of `history`, in seconds, and the last result.
func measure(_ history: KVHistory, repeats: Int) -> (seconds: Double, result: LinearizabilityResult<KV.Input, KV.Output>) {
    let checker = LinearizabilityChecker(model: KV())
    var times: [Double] = []
    var result = LinearizabilityResult<KV.Input, KV.Output>.linearizable
    let clock = ContinuousClock()
    for _ in 0..<repeats {
        let start = clock.now
        result = checker.check(history)
        let (s, atto) = (clock.now - start).components
        times.append(Double(s) + Double(atto) / 1e18)
    }
    times.sort()
    return (times[times.count / 2], result)
}

/// `history` with, after everything, a put of a fresh value and a get answering the value an
/// earlier completed put wrote: a stale read, which no linearization explains.
func withStaleRead(_ history: KVHistory) throws -> KVHistory {
    var copy = history
    let end = (history.operations.map { $0.completion ?? $0.invocation }.max() ?? 0) + 1
    guard let write = history.operations.first(where: { if case .put = $0.input { $0.output == .ok } else { false } }),
        case .put(let key, let value) = write.input
    else { return copy }
    try copy.append(client: -1, .put(key: key, value: "fresh"), invokedAt: end, outcome: .returned(.ok, at: end + 1))
    try copy.append(client: -1, .get(key: key), invokedAt: end + 2, outcome: .returned(.value(value), at: end + 3))
    return copy
}

@main
struct RaftLincheckBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft-lincheck-bench",
        abstract: "Time to check key-value histories for linearizability (RaftTestKit's LinearizabilityChecker).",
        discussion: "See Benchmarks/README.md.")

    @OptionGroup var options: Options

    func run() throws {
        print("raft-lincheck-bench: \(options.clients) clients, \(fixed(options.unknown * 100, 1))% unknown outcomes, median of \(options.repeats), seed \(options.seed)")
        print("")
        let header = ["operations", "keys", "ops/key", "linearizable", "ops/s", "stale read", "verdict"]
        let widths = [10, 6, 8, 13, 12, 11, 18]
        print(zip(header, widths).map { padLeft($0, $1) }.joined(separator: "  "))
        var failed = false
        for size in options.sizes.values {
            for keys in options.keys.values {
                let history = KV.randomHistory(seed: options.seed, operations: size, keys: keys, clients: options.clients, unknownFraction: options.unknown)
                let good = measure(history, repeats: options.repeats)
                let bad = measure(try withStaleRead(history), repeats: options.repeats)
                let verdict = good.result.isLinearizable && bad.result.violation != nil ? "as expected" : "WRONG"
                if verdict != "as expected" { failed = true }
                let row = [
                    grouped(size), grouped(keys), grouped(size / keys), milliseconds(good.seconds),
                    grouped(Int(Double(size) / max(good.seconds, 1e-9))), milliseconds(bad.seconds), verdict,
                ]
                print(zip(row, widths).map { padLeft($0, $1) }.joined(separator: "  "))
                if !good.result.isLinearizable { print(good.result) }
                if bad.result.violation == nil { print(bad.result) }
            }
        }
        if failed { throw ExitCode.failure }
    }

    func milliseconds(_ seconds: Double) -> String { fixed(seconds * 1e3, 1) + " ms" }
}
