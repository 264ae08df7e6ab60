import Foundation
import Raft

/// A temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ name: String = "kvstore-tests") throws {
        path = NSTemporaryDirectory() + name + "-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Waits until `condition` holds, polling, or throws a timeout naming `what`.
func eventually(_ limit: Duration, _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw RaftError(.timeout, "\(what) did not happen within \(limit)")
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
