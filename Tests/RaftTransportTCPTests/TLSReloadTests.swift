import Foundation
import Raft
import RaftTransportTCP
import Testing

/// `TCPTransport.reloadTLS`: certificates rotate without a restart. New connections use the new
/// certificate; connections already open keep working.
@Suite(.timeLimit(.minutes(2))) struct TLSReloadTests {
    @Test func rotatedCertificateIsUsedByNewConnections() async throws {
        let old = try TestPKI(name: "old CA")
        let new = try TestPKI(name: "new CA")
        let files = try TemporaryDirectory()
        defer { files.remove() }
        func install(_ identity: TestPKI.Identity) throws {
            try identity.certificate.write(toFile: files.path + "/node1.pem", atomically: true, encoding: .utf8)
            try identity.key.write(toFile: files.path + "/node1.key", atomically: true, encoding: .utf8)
        }
        // Node 1 reads its files; it trusts both authorities throughout (the middle step of a
        // rotation), and starts with the old authority's certificate.
        try install(try old.issue(node: 1, cluster: "test"))
        try (old.caCertificate + "\n" + new.caCertificate).write(toFile: files.path + "/ca.pem", atomically: true, encoding: .utf8)
        let server = try await HandshakeTests.Server(
            tls: TCPTransportTLS(
                certificateChain: .file(files.path + "/node1.pem"), privateKey: .file(files.path + "/node1.key"),
                trustRoots: .file(files.path + "/ca.pem")))

        // Node 2 trusts only the old authority and connects now; node 3 trusts only the new one,
        // so it cannot accept node 1's certificate until the rotation.
        let two = try TLSTests.member(2, dialling: server, tls: old.tls(for: try old.issue(node: 2, cluster: "test")))
        try await eventually(.seconds(10), "node 2's heartbeat delivered") { server.delivered.all.contains(TLSTests.heartbeat(from: 2)) }
        let three = try TLSTests.member(3, dialling: server, tls: new.tls(for: try new.issue(node: 3, cluster: "test")))
        try await eventually(.seconds(10), "node 3 refusing node 1's old certificate") { three.statistics.refusedHandshakes >= 2 }
        #expect(!server.delivered.all.contains(TLSTests.heartbeat(from: 3)))

        try install(try new.issue(node: 1, cluster: "test"))
        try server.transport.reloadTLS()
        // Node 3's next dial gets the new certificate.
        try await eventually(.seconds(10), "node 3's heartbeat delivered after the reload") { server.delivered.all.contains(TLSTests.heartbeat(from: 3)) }
        // Node 2's connection, made with the old certificate, still carries messages, and it
        // did not redial (node 2 could not accept the new certificate).
        let reconnects = two.statistics.reconnects
        two.send([TLSTests.heartbeat(from: 2, term: 2)])
        try await eventually(.seconds(10), "node 2's second heartbeat delivered") { server.delivered.all.contains(TLSTests.heartbeat(from: 2, term: 2)) }
        #expect(two.statistics.reconnects == reconnects)
        #expect(two.statistics.refusedHandshakes == 0)
        await two.shutdown()
        await three.shutdown()
        try await server.stop()
    }

    /// A reload that cannot load its files throws and changes nothing: new connections still get
    /// the certificate that worked.
    @Test func failedReloadKeepsTheWorkingCertificate() async throws {
        let pki = try TestPKI(name: "cluster CA")
        let files = try TemporaryDirectory()
        defer { files.remove() }
        let identity = try pki.issue(node: 1, cluster: "test")
        try identity.certificate.write(toFile: files.path + "/node1.pem", atomically: true, encoding: .utf8)
        let server = try await HandshakeTests.Server(
            tls: TCPTransportTLS(certificateChain: .file(files.path + "/node1.pem"), privateKey: .pem(identity.key), trustRoots: .pem(pki.caCertificate)))
        try "not a certificate".write(toFile: files.path + "/node1.pem", atomically: true, encoding: .utf8)
        let e = #expect(throws: RaftError.self) { try server.transport.reloadTLS() }
        #expect(e?.code == .invalidConfiguration)
        #expect(e?.message.contains("node1.pem") == true)
        // A key of another certificate, given as new sources, is refused the same way.
        let other = try pki.issue(node: 1, cluster: "test")
        let mismatched = TCPTransportTLS(certificateChain: .pem(identity.certificate), privateKey: .pem(other.key), trustRoots: .pem(pki.caCertificate))
        #expect(throws: RaftError.self) { try server.transport.reloadTLS(mismatched) }
        let member = try TLSTests.member(2, dialling: server, tls: pki.tls(for: try pki.issue(node: 2, cluster: "test")))
        try await eventually(.seconds(10), "a new member delivered") { server.delivered.all == [TLSTests.heartbeat(from: 2)] }
        await member.shutdown()
        try await server.stop()
    }

    @Test func plainTCPHasNothingToReload() throws {
        let t = try TCPTransport(configuration: TCPTransportConfiguration(clusterID: "test", nodeID: 1, listenAddress: PeerAddress(host: loopback, port: 0), peers: [:]))
        let e = #expect(throws: RaftError.self) { try t.reloadTLS() }
        #expect(e?.code == .invalidConfiguration)
    }
}
