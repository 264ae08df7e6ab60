import Foundation
import NIOCore
import NIOSSL
import Raft
import RaftTransportTCP
import Testing

/// Mutual TLS: a cluster whose certificates the cluster's authority signed works; a peer with a
/// self-signed certificate, one signed by another authority, none at all, or plain TCP, is
/// refused during the handshake, counted, and nothing it sends reaches the node.
@Suite(.timeLimit(.minutes(2))) struct TLSTests {
    static let heartbeat = HandshakeTests.heartbeat

    /// Node 2 of cluster "test" with `tls`, dialling the server's node 1 to send it a heartbeat
    /// (and redialling while it is refused).
    static func member2(dialling server: HandshakeTests.Server, tls: TCPTransportTLS) throws -> TCPTransport {
        try member(2, dialling: server, tls: tls)
    }

    /// Node `id` of cluster "test" with `tls`, dialling the server's node 1 to send it
    /// ``heartbeat(from:)`` (and redialling while it is refused).
    static func member(_ id: NodeID, dialling server: HandshakeTests.Server, tls: TCPTransportTLS) throws -> TCPTransport {
        var c = TCPTransportConfiguration(
            clusterID: "test", nodeID: id, listenAddress: PeerAddress(host: loopback, port: 0),
            peers: [1: PeerAddress(host: loopback, port: server.port)])
        c.tls = tls
        c.reconnectBackoff = .milliseconds(20)
        c.maxReconnectBackoff = .milliseconds(100)
        let t = try TCPTransport(configuration: c)
        t.send([heartbeat(from: id)])
        return t
    }

    /// A heartbeat from `id` to node 1 (``heartbeat`` is node 2's).
    static func heartbeat(from id: NodeID, term: Term = 1) -> Message {
        Message(from: id, to: 1, term: term, kind: .heartbeat(Heartbeat(commit: 0)))
    }

    @Test func threeNodesWithMutualTLSElectAndReplicate() async throws {
        let pki = try TestPKI(name: "cluster CA")
        var identities: [NodeID: TestPKI.Identity] = [:]
        for id in [1, 2, 3] as [NodeID] { identities[id] = try pki.issue(node: id, cluster: "tcp-test") }
        // Node 1 loads its certificate, key and roots from PEM files; the others from memory.
        let files = try TemporaryDirectory()
        defer { files.remove() }
        try identities[1]!.certificate.write(toFile: files.path + "/node1.pem", atomically: true, encoding: .utf8)
        try identities[1]!.key.write(toFile: files.path + "/node1.key", atomically: true, encoding: .utf8)
        try pki.caCertificate.write(toFile: files.path + "/ca.pem", atomically: true, encoding: .utf8)
        let fromFiles = TCPTransportTLS(
            certificateChain: .file(files.path + "/node1.pem"), privateKey: .file(files.path + "/node1.key"), trustRoots: .file(files.path + "/ca.pem"))
        let cluster = try await TCPCluster(tuneTransport: { c in
            c.tls = c.nodeID == 1 ? fromFiles : pki.tls(for: identities[c.nodeID]!)
        })
        do {
            try cluster.startAll()
            let commands = try await cluster.proposeMany("tls-", 20)
            try await cluster.waitForAll(commands)
            // It is TLS indeed: a plain-TCP member knocking on node 2 gets nothing.
            let answers = try await within(.seconds(10), "a plain-TCP knock") { [port = cluster.ports[2]!] in
                try await RawClient.knock(port: port, sending: [.hello(Hello(clusterID: "tcp-test", sender: 1, receiver: 2))])
            }
            #expect(answers.isEmpty)
            // Counted on the server's event loop, which may run after the knock saw the close.
            let transports = cluster.transports
            try await eventually(.seconds(5), "the knock counted") { transports.values.map(\.statistics.refusedHandshakes).reduce(0, +) >= 1 }
            let refused = cluster.transports.values.map(\.statistics.refusedHandshakes).reduce(0, +)
            #expect(refused == 1, "only the plain-TCP knock was refused")
        } catch {
            await cluster.stopAll()
            throw error
        }
        await cluster.stopAll()
    }

    @Test func memberWithACertificateOfTheAuthorityIsDelivered() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test")))
        let member = try Self.member2(dialling: server, tls: pki.tls(for: try pki.issue(node: 2, cluster: "test")))
        try await eventually(.seconds(10), "the member's heartbeat delivered") { server.delivered.all == [Self.heartbeat] }
        #expect(server.refused == 0)
        await member.shutdown()
        try await server.stop()
    }

    @Test(arguments: ["a self-signed certificate", "a certificate of another authority"])
    func peerWithAnUntrustedCertificateIsRefused(_ what: String) async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test")))
        let identity =
            what.contains("self-signed")
            ? try TestPKI.selfSigned("node-2", uris: [TCPTransportTLS.nodeURI(clusterID: "test", node: 2)])
            : try TestPKI(name: "another CA").issue(node: 2, cluster: "test")
        // The stranger trusts the cluster's authority, names a member and the right cluster in
        // its hello: only its certificate is wrong.
        let stranger = try Self.member2(dialling: server, tls: pki.tls(for: identity))
        try await eventually(.seconds(10), "two of the stranger's dials refused (\(what))") { server.refused >= 2 }
        // Give the server time to deliver anything it wrongly would.
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty)
        #expect(stranger.statistics.framesOut == 0, "the stranger never got past its hello")
        await stranger.shutdown()
        try await server.stop()
    }

    @Test func tlsPeerWithoutACertificateIsRefused() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test")))
        var client = TLSConfiguration.makeClientConfiguration()
        client.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pki.caCertificate.utf8)))
        client.certificateVerification = .noHostnameVerification
        client.minimumTLSVersion = .tlsv13
        try await Self.expectKnockRefused(on: server, tls: try NIOSSLContext(configuration: client), "the certificate-less knock")
    }

    @Test func plainTCPPeerIsRefused() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test")))
        try await Self.expectKnockRefused(on: server, tls: nil, "the plain-TCP knock")
    }

    /// A raw client (over TLS with `tls`, else plain TCP) sends a member's hello and a
    /// heartbeat: it gets no answer, the server counts one refusal and delivers nothing. Stops
    /// the server.
    static func expectKnockRefused(on server: HandshakeTests.Server, tls: NIOSSLContext?, _ what: String) async throws {
        let answers = try await within(.seconds(10), what) { [port = server.port] in
            try await RawClient.knock(port: port, tls: tls, sending: [.hello(Hello(clusterID: "test", sender: 2, receiver: 1)), .message(Self.heartbeat)])
        }
        #expect(answers.isEmpty)
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty)
        #expect(server.refused == 1)
        try await server.stop()
    }

    /// The dialling side checks too: a member does not talk to a server whose certificate its
    /// authority did not sign (here the server trusts both authorities, so only the member's
    /// check can refuse).
    @Test func memberRefusesAServerWithAnUntrustedCertificate() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let other = try TestPKI(name: "another CA")
        let server = try await HandshakeTests.Server(tls: other.tls(for: try other.issue(node: 1, cluster: "test"), alsoTrusted: [pki]))
        try await Self.expectMemberRefuses(server, memberTLS: pki.tls(for: try pki.issue(node: 2, cluster: "test")))
    }

    /// Member 2 with `memberTLS` dials `server` and refuses it: it counts the refusal, sends
    /// nothing, and the server delivers nothing. Stops both.
    static func expectMemberRefuses(_ server: HandshakeTests.Server, memberTLS: TCPTransportTLS) async throws {
        let member = try member2(dialling: server, tls: memberTLS)
        try await eventually(.seconds(10), "the member refusing the server") { member.statistics.refusedHandshakes >= 1 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty)
        #expect(member.statistics.framesOut == 0)
        await member.shutdown()
        try await server.stop()
    }

    @Test func unloadableCertificatesAreAConfigurationError() throws {
        let pki = try TestPKI(name: "cluster CA")
        let good = try pki.issue(node: 1, cluster: "test")
        let cases: [(String, TCPTransportTLS)] = [
            ("a missing file", TCPTransportTLS(certificateChain: .file("/nonexistent/node1.pem"), privateKey: .pem(good.key), trustRoots: .pem(pki.caCertificate))),
            ("a certificate that is not PEM", TCPTransportTLS(certificateChain: .pem("not a certificate"), privateKey: .pem(good.key), trustRoots: .pem(pki.caCertificate))),
            ("a key that is not PEM", TCPTransportTLS(certificateChain: .pem(good.certificate), privateKey: .pem("not a key"), trustRoots: .pem(pki.caCertificate))),
            ("empty trust roots", TCPTransportTLS(certificateChain: .pem(good.certificate), privateKey: .pem(good.key), trustRoots: .pem(""))),
            ("a key of another certificate", TCPTransportTLS(certificateChain: .pem(good.certificate), privateKey: .pem(try pki.issue("x").key), trustRoots: .pem(pki.caCertificate))),
        ]
        for (what, tls) in cases {
            var c = TCPTransportConfiguration(clusterID: "test", nodeID: 1, listenAddress: PeerAddress(host: loopback, port: 0), peers: [:])
            c.tls = tls
            let error = #expect(throws: RaftError.self, "\(what)") { try TCPTransport(configuration: c) }
            #expect(error?.code == .invalidConfiguration, "\(what)")
        }
    }
}
