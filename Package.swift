// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-raft",
    // The oldest Apple releases with everything the library uses: `Mutex` and `Atomic`
    // (Synchronization) and task executors (`TaskExecutor`, `withTaskExecutorPreference`, behind
    // the node's run loop) arrived with macOS 15, iOS 18, tvOS 18, watchOS 11 and visionOS 2.
    // Linux is tested (CI); the Apple platforms are expected to build but are not tested here.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftTestKit", targets: ["RaftTestKit"]),
        .library(name: "RaftTransportTCP", targets: ["RaftTransportTCP"]),
        .executable(name: "raft-demo", targets: ["raft-demo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Only RaftTransportTCP uses SwiftNIO; the Raft module does not depend on it.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Mutual TLS between peers (RaftTransportTCP only).
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // X509 reads the node URI of a peer's certificate (RaftTransportTCP); the tests also
        // make their certificates with it and swift-crypto.
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // `swift package generate-documentation` (DocC); CI builds the Raft and RaftTransportTCP
        // documentation with warnings as errors. A plugin only: nothing of it reaches users' builds.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        // The protocol core (standard library only), storage, snapshots and the node runtime.
        .target(
            name: "Raft",
            dependencies: [
                "CRaftSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // One system call Swift's Glibc module does not expose (fallocate, to reserve log space).
        .target(name: "CRaftSystem"),
        // Peers over TCP (SwiftNIO): wire codec, handshake, per-peer connections.
        .target(
            name: "RaftTransportTCP",
            dependencies: [
                "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // Reads the node URI in a peer's certificate (its subject alternative names).
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // Simulation cluster, safety checker and scenario runner, usable by library users.
        .target(name: "RaftTestKit", dependencies: ["Raft"]),
        // A narrated three-node cluster in one process.
        .executableTarget(name: "raft-demo", dependencies: ["Raft", "RaftTestKit"]),
        // Writes the log until SIGKILLed; driven by the crash test (Tests/RaftTests/CrashKillTests.swift).
        .executableTarget(name: "raft-crash-writer", dependencies: ["Raft", "RaftTestKit"]),
        .testTarget(
            name: "RaftTests",
            dependencies: ["Raft", "RaftTestKit", .product(name: "MetricsTestKit", package: "swift-metrics")],
            exclude: ["testdata"]
        ),
        .testTarget(
            name: "RaftTransportTCPTests",
            dependencies: [
                "Raft", "RaftTransportTCP", "RaftTestKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
