import Logging
import Raft
import RaftTransportTCP
import Synchronization
import Testing

/// A peer's certificate bound to its node id: with mutual TLS, a peer whose certificate the
/// cluster's authority signed but which claims, in its hello, a node its certificate does not
/// name (`raft://<cluster>/node/<id>`) is refused, logged, counted, and nothing it sends reaches
/// the node. Both sides check: the accepting side the dialler's claim, the dialler the node it
/// meant to reach.
@Suite(.timeLimit(.minutes(2))) struct CertificateIdentityTests {
    @Test func nodeURIs() {
        #expect(TCPTransportTLS.nodeURI(clusterID: "orders", node: 3) == "raft://orders/node/3")
        #expect(TCPTransportTLS.nodeURI(clusterID: "prod kv/é", node: 18_446_744_073_709_551_615) == "raft://prod%20kv%2F%C3%A9/node/18446744073709551615")
        #expect(TCPTransportTLS.nodeURI(clusterID: "A-z_0.9~", node: 1) == "raft://A-z_0.9~/node/1")
    }

    @Test func memberWhoseCertificateNamesItIsDelivered() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test")))
        // A certificate naming several nodes (one of them the claimed one) and other URIs.
        let identity = try pki.issue(
            "node-2", uris: ["https://example.com/node/3", TCPTransportTLS.nodeURI(clusterID: "test", node: 5), TCPTransportTLS.nodeURI(clusterID: "test", node: 2)])
        let member = try TLSTests.member(2, dialling: server, tls: pki.tls(for: identity))
        try await eventually(.seconds(10), "the member's heartbeat delivered") { server.delivered.all == [TLSTests.heartbeat(from: 2)] }
        #expect(server.refused == 0)
        await member.shutdown()
        try await server.stop()
    }

    /// Valid certificates of the cluster's authority that do not stand for the node claimed.
    @Test(arguments: [
        ("another member's certificate", ["raft://test/node/3"], TCPTransportTLS.NodeIdentity.required, "names node 3"),
        ("another member's, when unnamed ones are accepted", ["raft://test/node/3"], .requiredWhenNamed, "names node 3"),
        ("node 2 of another cluster", ["raft://other/node/2"], .requiredWhenNamed, "names no node of this cluster"),
        ("a certificate naming no node", ["https://test/node/2"], .required, "needs the subject alternative name URI raft://test/node/2"),
        ("a node URI with a zero-padded id", ["raft://test/node/02"], .required, "needs the subject alternative name URI raft://test/node/2"),
    ])
    func peerClaimingANodeItsCertificateDoesNotNameIsRefused(_ what: String, _ uris: [String], _ policy: TCPTransportTLS.NodeIdentity, _ logged: String) async throws {
        let pki = try TestPKI(name: "cluster CA")
        let logs = CapturedLogs()
        let server = try await HandshakeTests.Server(
            tls: pki.tls(for: try pki.issue(node: 1, cluster: "test"), nodeIdentity: policy), logger: Logger(label: "server") { _ in logs })
        let impostor = try TLSTests.member(2, dialling: server, tls: pki.tls(for: try pki.issue("impostor", uris: uris)))
        try await eventually(.seconds(10), "two of the impostor's dials refused (\(what))") { server.refused >= 2 }
        // Give the server time to deliver anything it wrongly would.
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.delivered.all.isEmpty, "\(what)")
        #expect(impostor.statistics.framesOut == 0, "the impostor never got past its hello (\(what))")
        #expect(logs.lines.contains { $0.contains("refused a connection") && $0.contains(logged) }, "\(what): \(logs.lines)")
        await impostor.shutdown()
        try await server.stop()
    }

    /// `.requiredWhenNamed` admits a certificate that names no node at all (a cluster moving to
    /// certificates with node URIs); `.required`, the default, refuses it.
    @Test func certificatesNamingNoNodeOnlyWhenAllowed() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let lenient = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 1, cluster: "test"), nodeIdentity: .requiredWhenNamed))
        let unnamed = try pki.issue("node-2")
        // The member itself still requires the server's certificate to name node 1 (it does).
        let member = try TLSTests.member(2, dialling: lenient, tls: pki.tls(for: unnamed))
        try await eventually(.seconds(10), "the unnamed member's heartbeat delivered") { lenient.delivered.all == [TLSTests.heartbeat(from: 2)] }
        #expect(lenient.refused == 0)
        await member.shutdown()
        try await lenient.stop()
        #expect(TCPTransportTLS(certificateChain: .pem(""), privateKey: .pem(""), trustRoots: .pem("")).nodeIdentity == .required)
    }

    /// The dialler refuses a server whose certificate does not name the node it dialled: a
    /// member's certificate on another member's address.
    @Test func dialerRefusesAServerCertificateOfAnotherNode() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let server = try await HandshakeTests.Server(tls: pki.tls(for: try pki.issue(node: 3, cluster: "test")))
        try await TLSTests.expectMemberRefuses(server, memberTLS: pki.tls(for: try pki.issue(node: 2, cluster: "test")))
    }
}

/// A log handler that keeps every line (message and metadata), for tests that check what was
/// logged.
final class CapturedLogs: LogHandler, Sendable {
    private let stored = Mutex<[String]>([])
    var lines: [String] { stored.withLock { $0 } }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        stored.withLock { $0.append("\(event.message) \(event.metadata ?? [:])") }
    }
}
