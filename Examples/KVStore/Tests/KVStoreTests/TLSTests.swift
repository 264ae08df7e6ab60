import Crypto
import Foundation
import Raft
import RaftTransportTCP
import Testing
import X509

@testable import KVStore

/// `--tls-cert`, `--tls-key`, `--tls-ca` with the real binary: `kvstore local --tls-dir`
/// starts three `kvstore serve` processes whose peers talk mutual TLS, a write commits, and a
/// node without TLS gets nothing from them; a certificate that is not there stops `kvstore
/// serve` with a message and status 1.
@Suite(.serialized) struct TLSTests {
    @Test func threeNodesOverMutualTLSCommitAWrite() async throws {
        let kvstore = try #require(siblingExecutable("kvstore"), "kvstore is not next to the test binary: `swift build --build-tests` builds it")
        let dir = try TemporaryDirectory("kvstore-tls")
        defer { dir.remove() }
        try TestCertificates.write(nodes: [1, 2, 3], to: dir.path + "/tls")
        let base = 20000 + Int(UInt32.random(in: 0..<400)) * 20
        let http = (1...3).map { base + 10 + $0 - 1 }
        let local = try QuickStartTests.LocalRun(kvstore: kvstore, dir: dir.path, raftPort: base, httpPort: http[0], extra: ["--tls-dir", dir.path + "/tls"])
        defer { local.killAll() }

        try await waitForLeader(http)
        #expect(try curl("-X", "PUT", "-d", "sealed", "http://127.0.0.1:\(http[1])/kv/secret") == "")
        #expect(try curl("http://127.0.0.1:\(http[2])/kv/secret") == "sealed")

        // The peers really talk TLS: a node without it, added as a learner, refuses what they
        // send (it is not a frame) and never receives the data.
        let http4 = base + 10 + 3
        let peers = (1...4).map { "\($0)=127.0.0.1:\(base + $0 - 1)/127.0.0.1:\(base + 10 + $0 - 1)" }.joined(separator: ",")
        let plain = try ChildProcess(
            executable: kvstore, arguments: ["serve", "--id", "4", "--join", "--peers", peers, "--data-dir", dir.path + "/plain4"],
            stdout: .file(dir.path + "/plain4.out"), stderr: .file(dir.path + "/plain4.err"))
        defer { plain.signal(SIGKILL) }
        try await eventually(.seconds(10), "the plain node answering") { (try? curl("-f", "http://127.0.0.1:\(http4)/health")) != nil }
        _ = try curl(
            "-f", "-X", "POST", "-d", #"{"id": 4, "raft": "127.0.0.1:\#(base + 3)", "http": "127.0.0.1:\#(http4)", "learner": true}"#,
            "http://127.0.0.1:\(http[0])/cluster/members")
        try await eventually(.seconds(10), "the plain node refusing the TLS peers' connections") {
            let metrics = (try? curl("http://127.0.0.1:\(http4)/metrics")) ?? ""
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("raft_tcp_refused_handshakes_total") }
            return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { $0 > 0 } ?? false
        }
        #expect(try curl("http://127.0.0.1:\(http4)/kv/secret?consistency=stale").contains("noSuchKey"))
        plain.signal(SIGTERM)
        #expect(await waitForExit(plain, within: .seconds(20)) == .exited(0))

        local.child.signal(SIGINT)
        #expect(await waitForExit(local.child, within: .seconds(20)) == .exited(0))
    }

    @Test func aMissingCertificateIsAClearErrorExit() async throws {
        let kvstore = try #require(siblingExecutable("kvstore"))
        let dir = try TemporaryDirectory("kvstore-tls-bad")
        defer { dir.remove() }
        try TestCertificates.write(nodes: [1], to: dir.path)
        let missing = dir.path + "/no-such-cert.pem"
        let port = 20000 + Int(UInt32.random(in: 0..<400)) * 20 + 15
        let child = try ChildProcess(
            executable: kvstore,
            arguments: [
                "serve", "--id", "1", "--peers", "1=127.0.0.1:\(port)/127.0.0.1:\(port + 1)", "--data-dir", dir.path + "/data",
                "--tls-cert", missing, "--tls-key", dir.path + "/node1.key", "--tls-ca", dir.path + "/ca.pem",
            ],
            stdout: .file(dir.path + "/out"), stderr: .file(dir.path + "/err"))
        defer { child.signal(SIGKILL) }
        #expect(await waitForExit(child, within: .seconds(10)) == .exited(1))
        let err = (try? String(contentsOfFile: dir.path + "/err", encoding: .utf8)) ?? ""
        #expect(err.contains("cannot run") && err.contains(missing), "\(err)")

        // Two of the three flags is a usage error, before anything starts.
        let partial = try ChildProcess(
            executable: kvstore,
            arguments: ["serve", "--id", "1", "--peers", "1=127.0.0.1:\(port)/127.0.0.1:\(port + 1)", "--data-dir", dir.path + "/data", "--tls-cert", missing],
            stdout: .file(dir.path + "/out"), stderr: .file(dir.path + "/err2"))
        defer { partial.signal(SIGKILL) }
        #expect(await waitForExit(partial, within: .seconds(10)) == .exited(64))
    }
}

/// A certificate authority made by the test (nothing committed) and one certificate per node,
/// written as `kvstore local --tls-dir` reads them: `ca.pem`, `nodeN.pem`, `nodeN.key`.
enum TestCertificates {
    static func write(nodes: [NodeID], to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("kvstore test CA") }
        let ca = try certificate(caName, key: caKey, issuer: caName, issuerKey: caKey, authority: true)
        try ca.write(toFile: dir + "/ca.pem", atomically: true, encoding: .utf8)
        for id in nodes {
            let key = P256.Signing.PrivateKey()
            // Named as the transport requires: the URI raft://kvstore/node/<id> (the default cluster id).
            let pem = try certificate(
                DistinguishedName { CommonName("kvstore node \(id)") }, key: key, issuer: caName, issuerKey: caKey, authority: false,
                uri: TCPTransportTLS.nodeURI(clusterID: "kvstore", node: id))
            try pem.write(toFile: dir + "/node\(id).pem", atomically: true, encoding: .utf8)
            try key.pemRepresentation.write(toFile: dir + "/node\(id).key", atomically: true, encoding: .utf8)
        }
    }

    /// A certificate for `subject`'s `key`, signed by `issuerKey`, valid from an hour ago for a
    /// day, in PEM: the authority's own, or a node's (for both ends of a TLS connection).
    static func certificate(
        _ subject: DistinguishedName, key: P256.Signing.PrivateKey, issuer: DistinguishedName, issuerKey: P256.Signing.PrivateKey,
        authority: Bool, uri: String? = nil
    ) throws -> String {
        let extensions = try Certificate.Extensions {
            if authority {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            } else {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                if let uri { SubjectAlternativeNames([.uniformResourceIdentifier(uri)]) }
            }
        }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date() - 3600, notValidAfter: Date() + 86_400, issuer: issuer, subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(issuerKey)
        ).serializeAsPEM().pemString
    }
}
