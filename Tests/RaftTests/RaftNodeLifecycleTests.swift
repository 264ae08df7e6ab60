import Foundation
import Logging
import Raft
import RaftTestKit
import ServiceLifecycle
import Synchronization
import Testing

/// Starting and stopping a node: what it opens, what it reports, what it releases.
@Suite("RaftNode lifecycle")
struct RaftNodeLifecycleTests {
    /// An on-disk state machine may call POSIX `open` from its own methods: no state machine
    /// requirement shadows it (``FileCounter`` would not compile otherwise).
    @Test func stateMachineMayCallPosixOpen() throws {
        let dir = TempDirectory()
        let counter = FileCounter(path: dir.path + "/counter")
        #expect(try counter.openState() == .zero)
        _ = try counter.apply((1...3).map { LogEntry(term: 1, index: LogIndex(rawValue: $0), data: [UInt8($0)]) }[...])
        try counter.syncState()
        let reopened = FileCounter(path: dir.path + "/counter")
        #expect(try reopened.openState() == 3)
        #expect(reopened.total == 6)
    }
}
