import Crypto
import Foundation
import Raft
import RaftTransportTCP
import X509

/// Certificates made by the test, nothing committed: a certificate authority that signs node
/// certificates, and the strangers' (self-signed, or signed by another authority).
struct TestPKI: Sendable {
    /// A certificate and its private key, in PEM.
    struct Identity: Sendable {
        let certificate: String
        let key: String
    }

    /// The authority's own certificate, in PEM: what peers trust.
    let caCertificate: String
    private let caKey: P256.Signing.PrivateKey
    private let caName: DistinguishedName

    /// A new authority named `name`, valid from an hour ago for a day.
    init(name: String) throws {
        caKey = P256.Signing.PrivateKey()
        caName = try DistinguishedName { CommonName(name) }
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: Date() - 3600, notValidAfter: Date() + 86_400, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(caKey))
        caCertificate = try ca.serializeAsPEM().pemString
    }

    /// A certificate for `commonName` with the subject alternative name URIs `uris`, signed by
    /// this authority.
    func issue(_ commonName: String, uris: [String] = []) throws -> Identity {
        let key = P256.Signing.PrivateKey()
        return try Self.leaf(commonName, uris: uris, key: key, issuer: caName, issuerKey: caKey)
    }

    /// The certificate of node `node` of `cluster`, naming it as the transport expects.
    func issue(node: NodeID, cluster: String) throws -> Identity {
        try issue("node-\(node)", uris: [TCPTransportTLS.nodeURI(clusterID: cluster, node: node)])
    }

    /// A certificate for `commonName` (and `uris`) signed by its own key: trusted by nobody.
    static func selfSigned(_ commonName: String, uris: [String] = []) throws -> Identity {
        let key = P256.Signing.PrivateKey()
        return try leaf(commonName, uris: uris, key: key, issuer: try DistinguishedName { CommonName(commonName) }, issuerKey: key)
    }

    private static func leaf(
        _ commonName: String, uris: [String], key: P256.Signing.PrivateKey, issuer: DistinguishedName, issuerKey: P256.Signing.PrivateKey
    ) throws -> Identity {
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date() - 3600, notValidAfter: Date() + 86_400, issuer: issuer,
            subject: try DistinguishedName { CommonName(commonName) }, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                if !uris.isEmpty { SubjectAlternativeNames(uris.map { .uniformResourceIdentifier($0) }) }
            },
            issuerPrivateKey: .init(issuerKey))
        return Identity(certificate: try certificate.serializeAsPEM().pemString, key: key.pemRepresentation)
    }

    /// The transport's TLS configuration for `identity`, trusting this authority (and `alsoTrusted`).
    func tls(for identity: Identity, alsoTrusted: [TestPKI] = [], nodeIdentity: TCPTransportTLS.NodeIdentity = .required) -> TCPTransportTLS {
        TCPTransportTLS(
            certificateChain: .pem(identity.certificate), privateKey: .pem(identity.key),
            trustRoots: .pem(([self] + alsoTrusted).map(\.caCertificate).joined(separator: "\n")), nodeIdentity: nodeIdentity)
    }
}
