import Logging
import MetricsTestKit
import NIOCore
import NIOPosix
import Raft
import RaftTransportTCP
import Testing

/// Strangers knocking: a transport for node 1 of cluster "test" (peers 2 and 3) and raw clients
/// that send it whatever they like.
@Suite(.timeLimit(.minutes(1))) struct HandshakeTests {
    /// A running transport and what it delivered.
    struct Server {
        let transport: TCPTransport
        let delivered = Delivered()
        let metrics = TestMetrics()
        let port: Int
        let run: Task<Void, any Error>

        init(tls: TCPTransportTLS? = nil, logger: Logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) async throws {
            var c = TCPTransportConfiguration(
                clusterID: "test", nodeID: 1, listenAddress: PeerAddress(host: loopback, port: 0),
                peers: [2: PeerAddress(host: loopback, port: 1), 3: PeerAddress(host: loopback, port: 1)])
            c.tls = tls
            let t = try TCPTransport(configuration: c, logger: logger, metricsFactory: metrics)
            t.setReceiver { [delivered] in delivered.record($0) }
            transport = t
            port = try await t.listen()
            run = Task { try await t.run() }
        }

        func stop() async throws {
            await transport.shutdown()
            try await within(.seconds(10), "the transport's run") { [run] in try await run.value }
        }

        var refused: Int64 { (try? metrics.expectCounter("raft_tcp_refused_handshakes_total", [("node", "1")]).totalValue) ?? 0 }
    }

    static let heartbeat = Message(from: 2, to: 1, term: 1, kind: .heartbeat(Heartbeat(commit: 0)))

    @Test func memberIsAnsweredAndItsMessagesDelivered() async throws {
        let server = try await Server()
        let answers = try await within(.seconds(10), "the member's knock") { [port = server.port] in
            let client = try await RawClient.framed(port: port)
            return try await client.executeThenClose { inbound, outbound in
                try await outbound.write(.hello(Hello(clusterID: "test", sender: 2, receiver: 1)))
                var it = inbound.makeAsyncIterator()
                let answer = try await it.next()
                try await outbound.write(.message(Self.heartbeat))
                return [answer].compactMap { $0 }
            }
        }
        #expect(answers == [.hello(Hello(clusterID: "test", sender: 1, receiver: 2))])
        try await eventually(.seconds(5), "the heartbeat delivered") { server.delivered.all == [Self.heartbeat] }
        #expect(server.refused == 0)
        try await server.stop()
    }

    @Test(arguments: [
        ("another cluster", Hello(clusterID: "other", sender: 2, receiver: 1)),
        ("not a member", Hello(clusterID: "test", sender: 9, receiver: 1)),
        ("its own id", Hello(clusterID: "test", sender: 1, receiver: 1)),
        ("addressed to another node", Hello(clusterID: "test", sender: 2, receiver: 3)),
        ("version 0", Hello(clusterID: "test", sender: 2, receiver: 1, version: 0)),
    ])
    func strangerIsRefusedAndNothingReachesTheNode(_ why: String, _ hello: Hello) async throws {
        let server = try await Server()
        let spoofed = Message(from: hello.sender, to: 1, term: 5, kind: .heartbeat(Heartbeat(commit: 0)))
        let answers = try await within(.seconds(10), "the stranger's knock (\(why))") { [port = server.port] in
            try await RawClient.knock(port: port, sending: [.hello(hello), .message(spoofed), .message(Self.heartbeat)])
        }
        #expect(answers.isEmpty, "a refused stranger gets no answer (\(why))")
        // Give the server time to deliver anything it wrongly would.
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty)
        #expect(server.refused == 1)
        try await server.stop()
    }

    @Test func messageBeforeTheHelloIsRefused() async throws {
        let server = try await Server()
        let answers = try await within(.seconds(10), "the knock") { [port = server.port] in
            try await RawClient.knock(port: port, sending: [.message(Self.heartbeat)])
        }
        #expect(answers.isEmpty)
        #expect(server.delivered.all.isEmpty)
        #expect(server.refused == 1)
        try await server.stop()
    }

    @Test func garbageClosesOnlyItsOwnConnection() async throws {
        let server = try await Server()
        // A member connects properly first and stays connected.
        let member = try await RawClient.framed(port: server.port)
        try await member.executeThenClose { inbound, outbound in
            try await outbound.write(.hello(Hello(clusterID: "test", sender: 2, receiver: 1)))
            var it = inbound.makeAsyncIterator()
            _ = try await it.next()
            // A stranger sends bytes that are not frames, and a 4 GiB length.
            for garbage in [Array("GET / HTTP/1.1\r\n\r\n".utf8), WireFormat.magic + [1, 0x16, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]] {
                let closed = try await within(.seconds(10), "the garbage connection closing") { [port = server.port] in
                    let raw = try await RawClient.bytes(port: port)
                    return try await raw.executeThenClose { rin, rout in
                        try await rout.write(ByteBuffer(bytes: garbage))
                        var got = 0
                        do { for try await b in rin { got += b.readableBytes } } catch {}
                        return got
                    }
                }
                #expect(closed == 0)
            }
            // The member's connection still works.
            try await outbound.write(.message(Self.heartbeat))
            try await eventually(.seconds(5), "the member's heartbeat delivered") { server.delivered.all == [Self.heartbeat] }
        }
        try await server.stop()
    }

    @Test func spoofedSenderClosesTheConnection() async throws {
        let server = try await Server()
        let spoof = Message(from: 3, to: 1, term: 1, kind: .heartbeat(Heartbeat(commit: 0)))
        let chunkOnMessagesLane = Message(
            from: 2, to: 1, term: 1,
            kind: .snapshotChunk(SnapshotChunk(transfer: 1, metadata: WireSamples.metadata, offset: 0, data: [1], checksum: 0, last: false)))
        for bad in [spoof, chunkOnMessagesLane] {
            let answers = try await within(.seconds(10), "the spoofing member") { [port = server.port] in
                try await RawClient.knock(port: port, sending: [.hello(Hello(clusterID: "test", sender: 2, receiver: 1)), .message(bad), .message(Self.heartbeat)])
            }
            #expect(answers.count == 1)
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty)
        try await server.stop()
    }

    /// A member removed at run time: its open connection closes and it can no longer connect.
    @Test func removedMemberIsDisconnectedAndRefused() async throws {
        let server = try await Server()
        let member = try await RawClient.framed(port: server.port)
        let endedAfterRemoval = try await within(.seconds(10), "the removed member's connection closing") {
            try await member.executeThenClose { inbound, outbound in
                try await outbound.write(.hello(Hello(clusterID: "test", sender: 2, receiver: 1)))
                var it = inbound.makeAsyncIterator()
                guard case .hello? = try await it.next() else { return false }
                server.transport.setPeers([3: PeerAddress(host: loopback, port: 1)])
                do { while try await it.next() != nil {} } catch {}
                return true
            }
        }
        #expect(endedAfterRemoval)
        let answers = try await within(.seconds(10), "the removed member knocking again") { [port = server.port] in
            try await RawClient.knock(port: port, sending: [.hello(Hello(clusterID: "test", sender: 2, receiver: 1)), .message(Self.heartbeat)])
        }
        #expect(answers.isEmpty)
        #expect(server.delivered.all.isEmpty)
        #expect(server.refused == 1)
        try await server.stop()
    }
}
