// The complete example of the article "Testing your state machine"
// (Sources/RaftTestKit/Docs.docc/TestingYourStateMachine.md), copied verbatim, so it compiles
// and passes. Keep the two the same.
import Raft
import RaftTestKit
import Testing

/// Account balances. A command is `deposit <account> <amount>`; its result is the new balance
/// (-1 for a command it cannot read: an error result, since a throw would stop the node).
final class Balances: StateMachine {
    var accounts: [String: Int] = [:]

    func apply(_ entries: ArraySlice<LogEntry>) throws -> [Int] {
        entries.filter { $0.kind == .command }.map { entry in
            let words = String(decoding: entry.data, as: UTF8.self).split(separator: " ")
            guard words.count == 3, words[0] == "deposit", let amount = Int(words[2]) else { return -1 }
            let account = String(words[1])
            accounts[account, default: 0] += amount
            return accounts[account, default: 0]
        }
    }

    /// A copy of the dictionary (copy-on-write): later applies do not change it.
    func prepareSnapshot() throws -> [String: Int] { accounts }

    /// Sorted by account, so equal states save equal bytes.
    static func saveSnapshot(_ accounts: [String: Int], to output: SnapshotOutput) throws {
        try output.write(UInt32(accounts.count))
        for (account, balance) in accounts.sorted(by: { $0.key < $1.key }) {
            try output.write(lengthPrefixed: account)
            try output.write(Int64(balance))
        }
    }

    func recoverSnapshot(from input: SnapshotInput, metadata: SnapshotMetadata) throws {
        var restored: [String: Int] = [:]
        let count = try input.readUInt32()
        for _ in 0..<count {
            let account = try input.readLengthPrefixedString(maxLength: 256)
            restored[account] = Int(try input.readInt64())
        }
        accounts = restored
    }
}

@Test func balancesKeepTheStateMachineContract() async throws {
    let report = await StateMachineChecks.run(
        make: { _ in Balances() },
        commands: { random in Array("deposit account\(random.next() % 10) \(random.next() % 1000)".utf8) })
    print(report)
    try report.requirePassed()
}

@Test func balancesSurviveTheSimulation() throws {
    let report = SimCluster.check(
        stateMachine: { Balances() },
        commands: { random in Array("deposit account\(random.next() % 10) \(random.next() % 1000)".utf8) },
        seeds: 0..<100)
    print(report)
    try report.requirePassed()
}
