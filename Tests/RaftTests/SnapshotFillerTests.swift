import Raft
import RaftTestKit
import Testing

/// RaftTestKit's SnapshotFiller: what it writes reads back to the same count, and any change is
/// caught.
@Suite struct SnapshotFillerTests {
    static let metadata = SnapshotMetadata(index: 1, term: 1, confState: ConfState(voters: [1]))

    static func written(_ count: Int) throws -> [UInt8] {
        let output = SnapshotOutput(inMemory: metadata)
        try SnapshotFiller.write(count, to: output)
        return output.data
    }

    @Test(arguments: [0, 1, 8, SnapshotFiller.blockBytes - 1, SnapshotFiller.blockBytes, 3 * SnapshotFiller.blockBytes + 17])
    func roundTrips(_ count: Int) throws {
        let bytes = try Self.written(count)
        #expect(bytes.count == count)
        #expect(try SnapshotFiller.readAndCheck(from: SnapshotInput(bytes)) == count)
    }

    @Test func changedLostOrRepeatedBytesAreCaught() throws {
        let bytes = try Self.written(3 * SnapshotFiller.blockBytes)
        var flipped = bytes
        flipped[SnapshotFiller.blockBytes + 100] ^= 1
        let b = SnapshotFiller.blockBytes
        let cases: [(String, [UInt8])] = [
            ("a byte changed", flipped),
            ("a block lost", Array(bytes[0..<b] + bytes[(2 * b)...])),
            ("a block repeated", Array(bytes[0..<(2 * b)] + bytes[b...])),
        ]
        for (what, input) in cases {
            let error = #expect(throws: RaftError.self, "\(what)") { try SnapshotFiller.readAndCheck(from: SnapshotInput(input)) }
            #expect(error?.code == .corruption, "\(what)")
        }
    }
}
