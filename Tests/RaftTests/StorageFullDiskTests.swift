import Foundation
import Raft
import Testing

/// A full disk is its own error code, so that a service can tell it from a failing device and
/// wait for space instead of giving up. `/dev/full` answers every write with `ENOSPC`.
@Suite("Storage on a full disk")
struct StorageFullDiskTests {
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/full"), "needs /dev/full"))
    func aWriteToAFullDiskFailsWithNoSpace() throws {
        let file = try PosixFileSystem().open("/dev/full", create: false)
        defer { file.close() }
        let bytes: [UInt8] = Array(repeating: 7, count: 64)
        do {
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            Issue.record("a write to /dev/full succeeded")
        } catch let error as RaftError {
            #expect(error.code == .noSpace, "\(error)")
            #expect(error.message.contains("/dev/full"), "the message names the file: \(error.message)")
        } catch {
            Issue.record("not a RaftError: \(error)")
        }
    }

    @Test func otherFileErrorsStayIO() throws {
        #expect(throws: RaftError.self) { try PosixFileSystem().open("/nonexistent-dir-\(UUID())/file", create: true) }
        do { _ = try PosixFileSystem().open("/nonexistent-dir-\(UUID())/file", create: true) } catch { #expect(error.code == .io, "\(error)") }
    }
}
