import ArgumentParser
import KVStore
import Logging
import Raft
import RaftTransportTCP

/// `kvstore`: a replicated key-value service built on swift-raft.
@main
struct KVStoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvstore",
        abstract: "A replicated key-value service on swift-raft, with an HTTP API.",
        discussion: """
            `kvstore local` starts a three-node cluster on this machine; `kvstore serve` runs one node.
            Talk to it with curl: curl -L -X PUT -d hello http://127.0.0.1:8001/kv/greeting
            """,
        subcommands: [Serve.self, Local.self])
}

/// Options both subcommands take.
struct LogOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// Logs go to standard error, one line per event.
    func bootstrap() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
