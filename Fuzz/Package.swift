// swift-tools-version: 6.1
import PackageDescription

// A libFuzzer target for the TCP transport's frame decoder. Not built by CI (too slow to be
// worth it there; see README.md): build and run it by hand with
//   cd Fuzz && swift build -c release -Xswiftc -sanitize=fuzzer
//   .build/release/fuzz-wire-decoder -runs=10000000 corpus/
let package = Package(
    name: "swift-raft-fuzz",
    dependencies: [
        .package(name: "swift-raft", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "fuzz-wire-decoder",
            dependencies: [
                .product(name: "RaftTransportTCP", package: "swift-raft"),
                .product(name: "Raft", package: "swift-raft"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        )
    ],
    swiftLanguageModes: [.v6]
)
