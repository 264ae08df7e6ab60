import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Raft
import RaftTransportTCP
import Synchronization

/// Runs `body`, failing with a timeout error if it takes longer than `limit`: no test waits
/// forever on a socket.
func within<T: Sendable>(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw RaftError(.timeout, "\(what) did not finish within \(limit)")
        }
        return value
    }
}

/// Polls `condition` every 10 ms until it holds, for at most `limit`.
func eventually(_ limit: Duration = .seconds(10), _ what: String, _ condition: @Sendable () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw RaftError(.timeout, "\(what): not within \(limit)")
}

/// Messages a transport delivered, recorded for the test to look at.
final class Delivered: Sendable {
    private let messages = Mutex<[Message]>([])
    var all: [Message] { messages.withLock { $0 } }
    func record(_ m: Message) { messages.withLock { $0.append(m) } }
}

/// A raw client that speaks the wire format by hand (or sends any bytes): the stranger of the
/// handshake tests.
enum RawClient {
    /// A framed connection, over TLS with `tls` (a client context) when it is given.
    static func framed(port: Int, tls: NIOSSLContext? = nil) async throws -> NIOAsyncChannel<WireFrame, WireFrame> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: nil)) }
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WireFrameDecoder()))
                try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(WireFrameEncoder()))
                return try NIOAsyncChannel<WireFrame, WireFrame>(wrappingChannelSynchronously: channel)
            }
        }
    }

    static func bytes(port: Int) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
    }

    /// Sends `frames`, then reads until the server closes the connection; returns what it
    /// answered (a refused stranger gets nothing).
    static func knock(port: Int, tls: NIOSSLContext? = nil, sending frames: [WireFrame]) async throws -> [WireFrame] {
        let client = try await framed(port: port, tls: tls)
        return try await client.executeThenClose { inbound, outbound in
            // A refusing server may close before everything is written.
            do { for f in frames { try await outbound.write(f) } } catch {}
            var answers: [WireFrame] = []
            do { for try await f in inbound { answers.append(f) } } catch {}
            return answers
        }
    }
}

/// A temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "raft-tcp-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

let loopback = "127.0.0.1"
