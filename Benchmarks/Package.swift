// swift-tools-version: 6.1
import PackageDescription

// Benchmarks for the Raft core. A separate package so the library's own package keeps no
// benchmark code and no extra targets. Run with:
//   cd Benchmarks && swift run -c release raft-core-bench
//   cd Benchmarks && swift run -c release raft-wal-bench
//   cd Benchmarks && swift run -c release raft-node-bench          # LocalTransport, then TCP
//   cd Benchmarks && swift run -c release raft-read-bench
//   cd Benchmarks && swift run -c release raft-lincheck-bench
//   cd Benchmarks && swift run -c release raft-snapshot-bench      # 1 GiB between two processes
//   cd Benchmarks && swift run -c release raft-membership-bench    # replace a voter under load
let package = Package(
    name: "swift-raft-benchmarks",
    dependencies: [
        .package(name: "swift-raft", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    ],
    targets: [
        // Interposes malloc and friends to count heap allocations (glibc only).
        .target(name: "MallocCounter"),
        // Number formatting, temporary directories, option parsing and the node benchmarks' state
        // machine, shared by the programs.
        .target(
            name: "BenchSupport",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Raft", package: "swift-raft"),
            ]
        ),
        .executableTarget(
            name: "raft-core-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                "MallocCounter",
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Durable write throughput of FileLogStorage against the disk's raw fdatasync rate.
        .executableTarget(
            name: "raft-wal-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Three RaftNodes on FileLogStorage in real time, over LocalTransport and over TCP:
        // proposals/s and latency against the disk's fdatasync latency, fsyncs per committed
        // proposal, bytes on the wire per proposal.
        .executableTarget(
            name: "raft-node-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                .product(name: "RaftTransportTCP", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // A large snapshot (1 GiB by default) streamed over TCP from a process with two nodes to
        // a process with the third: MB/s and the peak resident memory of both.
        .executableTarget(
            name: "raft-snapshot-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                .product(name: "RaftTestKit", package: "swift-raft"),
                .product(name: "RaftTransportTCP", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Linearizable and lease reads beside writes on three RaftNodes with fsync: reads/s and
        // latency against the write rate measured in the same run, with the nodes' counts of
        // read rounds and fsyncs (through a counting swift-metrics factory).
        .executableTarget(
            name: "raft-read-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // A membership change under load: one of three voters replaced (learner, catch-up of a
        // long log, promotion, removal) while proposers run; rate and p99 during it beside steady.
        .executableTarget(
            name: "raft-membership-bench",
            dependencies: [
                .product(name: "Raft", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Time to check key-value histories of 10k and 50k operations for linearizability.
        .executableTarget(
            name: "raft-lincheck-bench",
            dependencies: [
                .product(name: "RaftTestKit", package: "swift-raft"),
                "BenchSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
