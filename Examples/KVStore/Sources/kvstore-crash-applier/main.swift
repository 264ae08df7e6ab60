// Applies batches to a SQLiteStateMachine until it is killed; driven by the crash test
// (Tests/KVStoreTests/SQLiteCrashTests.swift).
//
// Usage: kvstore-crash-applier DATABASE BATCH
//
// Entry n puts key "k<n % 16>" = "<n>", so the state at any index I is known exactly: each key
// holds the largest n <= I with its remainder. The applier continues from the index the
// database reopens at, applies batches of BATCH entries (one transaction each) and syncs every
// tenth batch, as the runtime would around snapshots. The test kills it with SIGKILL at a
// random moment and checks that the reopened index and data are in step.
import KVStore
import Raft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a line to standard error (file descriptor 2; the C `stderr` global is not
/// concurrency-safe in Swift 6).
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let batch = UInt64(arguments[2]), batch > 0 else {
    printError("usage: kvstore-crash-applier DATABASE BATCH")
    exit(2)
}
do {
    let machine = try SQLiteStateMachine(path: arguments[1])
    var next = try machine.openState().rawValue + 1
    var batches = 0
    while true {
        let entries = (next..<next + batch).map { n in
            LogEntry(term: 1, index: LogIndex(rawValue: n), data: KVCommand.put(key: Array("k\(n % 16)".utf8), value: Array("\(n)".utf8)).encoded)
        }
        _ = try machine.apply(entries[...])
        next += batch
        batches += 1
        if batches % 10 == 0 { try machine.syncState() }
    }
} catch {
    printError("kvstore-crash-applier: \(error)")
    exit(1)
}
