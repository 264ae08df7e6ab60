// swift-tools-version: 6.1
import PackageDescription

// The three-node replicated key-value service built on swift-raft. It is a package of its own,
// depending on the library by path, so that its dependencies (an HTTP server, SQLite, an argument
// parser, a Prometheus exporter) never reach the library's users.
let package = Package(
    name: "KVStore",
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        .library(name: "KVStore", targets: ["KVStore"]),
        .executable(name: "kvstore", targets: ["kvstore"]),
        .executable(name: "kvstore-faults", targets: ["kvstore-faults"]),
    ],
    dependencies: [
        .package(name: "swift-raft", path: "../.."),
        // `traits: []`: Hummingbird's default traits pull in swift-configuration and full
        // Foundation, which this example does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // The fault-injection run's clients (HummingbirdTesting, used by the tests, builds it anyway).
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // Only the tests use these, to make the certificates of the TLS test.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // The SQLite state machine, the HTTP routes and the node wiring.
        .target(
            name: "KVStore",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                .product(name: "RaftTransportTCP", package: "swift-raft"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // `kvstore serve` (one node) and `kvstore local` (three child processes on loopback).
        .executableTarget(
            name: "kvstore",
            dependencies: [
                "KVStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The fault-injection run: real `kvstore serve` processes, clients, faults, and the
        // linearizability check of the history (Tests/KVStoreTests/KVFaultTests.swift runs it in CI).
        .target(
            name: "KVFaults",
            dependencies: [
                "KVStore",
                .product(name: "RaftTestKit", package: "swift-raft"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]),
        // `kvstore-faults`: fault runs on demand (`--runs 100`, `--seconds 60`).
        .executableTarget(
            name: "kvstore-faults",
            dependencies: ["KVFaults", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Applies batches until SIGKILLed; driven by the crash test (Tests/KVStoreTests/SQLiteCrashTests.swift).
        .executableTarget(name: "kvstore-crash-applier", dependencies: ["KVStore", .product(name: "Raft", package: "swift-raft")]),
        .testTarget(
            name: "KVStoreTests",
            dependencies: [
                "KVStore",
                "KVFaults",
                .product(name: "Raft", package: "swift-raft"),
                .product(name: "RaftTestKit", package: "swift-raft"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
