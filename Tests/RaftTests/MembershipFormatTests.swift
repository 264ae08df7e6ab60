import Foundation
import Testing

@testable import Raft

/// The membership's binary form and the storage formats that carry it (issue 8): every field
/// round-trips, damage is a typed error, and logs and snapshots of format version 1 (before
/// membership changes) are still read.
@Suite("Membership formats")
struct MembershipFormatTests {
    static let joint = ConfState(
        voters: [1, 2, 4], learners: [3, 9], outgoingVoters: [1, 2, 3], addresses: [1: "10.0.0.1:7000", 4: "[::1]:7004", 9: "é:1"],
        autoLeave: false)

    @Test(arguments: [ConfState(voters: [1]), ConfState(voters: [1, 2, 3], learners: [7]), joint, ConfState.empty])
    func everyFieldRoundTrips(_ conf: ConfState) throws {
        let bytes = conf.encoded()
        #expect(try ConfState(decoding: bytes[...]) == conf)
        // The same value always has the same bytes (addresses come out in id order).
        #expect(try ConfState(decoding: bytes[...]).encoded() == bytes)
    }

    /// Every truncation and every single-byte change of a membership either decodes to a value
    /// (a change in an id, say) or throws `.corruption`: never a crash, never a trap.
    @Test func damageIsATypedError() throws {
        let bytes = Self.joint.encoded()
        for cut in 0..<bytes.count {
            #expect(throws: RaftError.self) { _ = try ConfState(decoding: bytes[..<cut]) }
        }
        for i in bytes.indices {
            for v: UInt8 in [0, 1, 0x7F, 0xFF] where v != bytes[i] {
                var b = bytes
                b[i] = v
                do { _ = try ConfState(decoding: b[...]) } catch { #expect(error.code == .corruption) }
            }
        }
        var longer = bytes
        longer.append(0)
        let e = #expect(throws: RaftError.self) { _ = try ConfState(decoding: longer[...]) }
        #expect(e?.message.contains("left over") == true)
        // Ids out of order are damage: each value has one form.
        var swapped = ConfState(voters: [1, 2]).encoded()
        swapped.swapAt(6, 14)
        #expect(throws: RaftError.self) { _ = try ConfState(decoding: swapped[...]) }
    }

    // MARK: Version 1 files

    static func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }

    static func record(_ body: [UInt8]) -> [UInt8] {
        le(UInt64(body.count), 4) + le(UInt64(CRC32C.checksum(body)), 4) + body
    }

    /// A segment as version 1 of the library wrote it: header, a type-3 base record with the
    /// voters, a hard state, and entries 1...3 of term 1.
    static func versionOneSegment() -> [UInt8] {
        var header = Array("SWRFTWAL".utf8) + le(1, 2) + le(0, 2) + le(0, 8)
        header += le(UInt64(CRC32C.checksum(header)), 4)
        var b = header
        b += record([3] + le(0, 8) + le(0, 8) + [0] + le(3, 4) + le(1, 8) + le(2, 8) + le(3, 8))
        b += record([2] + le(1, 8) + le(1, 8) + le(2, 8))
        for i in UInt64(1)...3 { b += record([1] + le(1, 8) + le(i, 8) + [0] + Array("v\(i)".utf8)) }
        return b
    }

    @Test func aVersionOneLogOpensAndGoesOnInANewSegment() throws {
        let dir = TempDirectory()
        let wal = dir.path + "/wal"
        try FileManager.default.createDirectory(atPath: wal, withIntermediateDirectories: true)
        try Data(Self.versionOneSegment()).write(to: URL(fileURLWithPath: wal + "/0000000000000000.wal"))
        do {
            let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
            let (hard, conf) = try s.initialState()
            #expect(hard == HardState(term: 1, vote: 1, commit: 2))
            #expect(conf == ConfState(voters: [1, 2, 3]))
            #expect(try s.entries(in: 1..<4, maxBytes: .max).map(\.data) == ["v1", "v2", "v3"].map { Array($0.utf8) })
            let change = ConfState(voters: [1, 2, 3], learners: [4], addresses: [4: "h:4"])
            try s.append([LogEntry(term: 1, index: 4, kind: .membership, data: change.encoded())])
            try s.sync()
            s.close()
        }
        // The old segment is untouched: new records went to a new segment of version 2.
        let names = try FileManager.default.contentsOfDirectory(atPath: wal).sorted()
        #expect(names == ["0000000000000000.wal", "0000000000000001.wal"])
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: wal + "/" + names[0]))) == Self.versionOneSegment())
        let newer = Array(try Data(contentsOf: URL(fileURLWithPath: wal + "/" + names[1])))
        #expect(newer[8] == 2 && newer[9] == 0)
        // A core started on it uses the membership of the entry, the latest in the log.
        let s = try FileLogStorage(directory: dir.path, voters: [1, 2, 3])
        #expect(try s.membershipEntries().map(\.index) == [4])
        let core = try RaftCore(configuration: RaftConfiguration(id: 1), storage: s)
        #expect(core.membership == ConfState(voters: [1, 2, 3], learners: [4], addresses: [4: "h:4"]))
        #expect(core.membershipIndex == 4)
    }

    @Test func aVersionOneSnapshotFileIsRead() throws {
        let dir = TempDirectory()
        var file = Array("SWRFTSNP".utf8) + Self.le(1, 2) + Self.le(0, 2)
        let meta = Self.le(7, 8) + Self.le(2, 8) + Self.le(7, 8) + Self.le(2, 4) + Self.le(1, 8) + Self.le(5, 8)
        file += Self.le(UInt64(meta.count), 4) + meta
        let data = Array("state".utf8)
        file += Self.le(UInt64(data.count), 4) + data + Self.le(0, 4)
        file += Self.le(UInt64(CRC32C.checksum(file)), 4)
        let name = String(repeating: "0", count: 15) + "7-" + String(repeating: "0", count: 15) + "2.snap"
        try Data(file).write(to: URL(fileURLWithPath: dir.path + "/" + name))
        let snapshotter = try Snapshotter(directory: dir.path)
        let reader = try snapshotter.open(name)
        #expect(reader.metadata.raft == SnapshotMetadata(index: 7, term: 2, confState: ConfState(voters: [1, 5])))
    }

    /// The membership in a snapshot file of this version keeps learners, the joint state and
    /// addresses.
    @Test func aSnapshotKeepsTheWholeMembership() throws {
        let dir = TempDirectory()
        let snapshotter = try Snapshotter(directory: dir.path)
        let meta = SnapshotFileMetadata(raft: SnapshotMetadata(index: 9, term: 3, confState: Self.joint), appliedIndex: 9)
        try snapshotter.save(meta, data: [1, 2, 3])
        let reopened = try Snapshotter(directory: dir.path)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".snap") }
        #expect(try reopened.open(try #require(names.first)).metadata == meta)
    }
}
