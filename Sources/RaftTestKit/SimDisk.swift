import Raft

/// The disk of one simulated node: where its storage lives and what a power loss does to it.
public protocol SimDisk: AnyObject {
    /// Opens the node's storage (again, after a crash).
    func open() throws(RaftError) -> any WritableLogStorage
    /// Loses power: whatever was not durable is lost or torn.
    func powerLoss(seed: UInt64)
}

/// A disk that is a ``MemoryLogStorage``: everything written is durable at once.
public final class MemoryDisk: SimDisk {
    let storage: MemoryLogStorage

    /// Creates a disk bootstrapped with `voters`.
    public init(voters: [NodeID]) { storage = MemoryLogStorage(voters: voters) }

    public func open() throws(RaftError) -> any WritableLogStorage { storage }

    public func powerLoss(seed: UInt64) {}
}

/// A disk holding a real ``FileLogStorage`` on a ``SimulatedFileSystem``: a crash tears
/// whatever was written but not synced.
public final class FileDisk: SimDisk {
    /// The simulated file system.
    public let fileSystem = SimulatedFileSystem()
    let voters: [NodeID]
    let options: FileLogStorageOptions
    var current: FileLogStorage?

    /// Creates a disk bootstrapped with `voters`; small segments by default, so simulations
    /// roll and compact segments often.
    public init(voters: [NodeID], options: FileLogStorageOptions? = nil) {
        self.voters = voters
        self.options = options ?? {
            var o = FileLogStorageOptions()
            o.segmentBytes = 4096
            o.cachedEntries = 16
            o.keepSnapshots = 2
            return o
        }()
    }

    public func open() throws(RaftError) -> any WritableLogStorage {
        current?.close()
        let s = try FileLogStorage(directory: "/node", voters: voters, options: options, fileSystem: fileSystem)
        current = s
        return s
    }

    public func powerLoss(seed: UInt64) {
        current?.close()
        current = nil
        fileSystem.powerLoss(seed: seed)
    }
}
