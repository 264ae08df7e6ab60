import Foundation
import Logging
import Raft
import ServiceLifecycle

/// Runs a ``KVNode``'s replica, and rides out a full disk: when the replica stops with
/// ``Raft/RaftError/Code/noSpace`` (its log or its database could not write), the HTTP API
/// stays up and answers 503 `diskFull`, and every second the service tries to open the
/// node's files again and start a new replica on them. Opening recovers them as after a crash
/// (a torn last record is cut off; the database rolls back its unfinished transaction), so
/// once there is room the node goes on where it stopped. Any other error stops the node.
struct KVReplicaService: Service {
    let node: KVNode

    func run() async throws {
        var current = node.raft
        while true {
            do {
                try await current.run()
                return
            } catch let e as RaftError where e.code == .noSpace {
                node.logger.error("the disk is full: the replica stopped; it starts again once there is space", metadata: ["error": "\(e.message)"])
                node.replica.withLock { $0.noSpace = e }
                guard let next = try await reopen() else { return }
                current = next
            }
        }
    }

    /// A new replica on the node's files once they open, or `nil` if the node is shut down
    /// first.
    func reopen() async throws -> RaftNode<SQLiteStateMachine>? {
        var attempts = 0
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            } catch {
                return nil
            }
            // Opening needs no new space (it would succeed on a full disk, and the new replica
            // fail at its first write): wait until the data directory's file system has room.
            guard Self.freeBytes(node.configuration.dataDirectory) ?? .max >= Self.spaceNeeded else { continue }
            attempts += 1
            do {
                let next = try KVNode.replica(
                    node.configuration, metrics: node.metricsFactory, statistics: node.statistics, transport: node.transport,
                    directory: node.directory, logger: node.logger)
                node.replica.withLock { $0 = KVNode.Replica(node: next, noSpace: nil) }
                node.logger.notice("there is space again: a new replica starts on the node's files", metadata: ["attempts": "\(attempts)"])
                return next
            } catch let e as RaftError where e.code == .noSpace {
                node.replica.withLock { $0.noSpace = e }
            }
        }
        return nil
    }

    /// Free space the node waits for before it opens its files again.
    static let spaceNeeded: UInt64 = 8 << 20

    /// Bytes available to this process on the file system holding `path`.
    static func freeBytes(_ path: String) -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }
}
