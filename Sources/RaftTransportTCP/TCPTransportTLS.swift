import NIOSSL
import Raft

/// Mutual TLS between the members of a cluster: every node presents a certificate signed by the
/// cluster's certificate authority and accepts only peers that do the same.
///
/// ```swift
/// var tcp = TCPTransportConfiguration(clusterID: "orders", nodeID: 1, listenAddress: ..., peers: ...)
/// tcp.tls = TCPTransportTLS(
///     certificateChain: .file("/etc/raft/node1.pem"), privateKey: .file("/etc/raft/node1.key"),
///     trustRoots: .file("/etc/raft/cluster-ca.pem"))
/// ```
///
/// With TLS configured, both ends of every connection (the messages lane and the snapshots
/// lane) run TLS 1.3 and verify the other's certificate chain against ``trustRoots``: a peer
/// without a certificate, with a self-signed one, with one signed by another authority, or
/// speaking plain TCP, fails the TLS handshake. That connection is closed, the refusal is logged
/// and counted (`raft_tcp_refused_handshakes_total`), and nothing it sent reaches the node.
///
/// Each certificate names its node: a peer whose hello claims a node id its certificate does not
/// name is refused (see ``NodeIdentity`` and <doc:MutualTLS>), so a member cannot pass for
/// another. Host names are not checked: peers are often addressed by IP, and the node URI in the
/// certificate says more than a host name would.
public struct TCPTransportTLS: Sendable, Hashable {
    /// Which certificates may stand for the node a peer's hello claims.
    ///
    /// A certificate names its node with the subject alternative name URI
    /// `raft://<cluster id>/node/<node id>` (``TCPTransportTLS/nodeURI(clusterID:node:)``). A
    /// certificate that names nodes but not the one claimed (another member, or a node of another
    /// cluster) is always refused; the cases differ only for a certificate that names no node.
    public enum NodeIdentity: Sendable, Hashable {
        /// Every peer's certificate must name the node its hello claims (the default). Without
        /// this, any holder of one certificate of the cluster's authority could speak as every
        /// member: answer votes in their names and win an election alone.
        case required
        /// A certificate that names no node at all is accepted for any member; one that names
        /// nodes must name the one claimed. For a cluster moving from certificates without node
        /// URIs to certificates with them: switch back to ``required`` once every node has its
        /// new certificate.
        case requiredWhenNamed
    }

    /// The subject alternative name URI that names `node` of cluster `clusterID` in its
    /// certificate: `raft://<cluster id>/node/<node id>`, the cluster id percent-encoded (every
    /// byte but `A-Z a-z 0-9 - . _ ~`) and the node id in decimal, such as
    /// `raft://orders/node/3`.
    public static func nodeURI(clusterID: String, node: NodeID) -> String {
        CertificateNodeIdentity.uri(clusterID: clusterID, node: node)
    }

    /// Where a PEM document (one or more `-----BEGIN ...-----` blocks) comes from.
    public enum PEMSource: Sendable, Hashable {
        /// A file, read when the transport is created and again by ``TCPTransport/reloadTLS(_:)``.
        case file(String)
        /// The document's text, held in memory.
        case pem(String)
    }

    /// This node's certificate, followed by any intermediate certificates between it and the
    /// authority.
    public var certificateChain: PEMSource
    /// The private key of this node's certificate (unencrypted PEM: PKCS#8, or the SEC 1 or
    /// PKCS#1 forms).
    public var privateKey: PEMSource
    /// The certificate authorities a peer's certificate must chain to: the cluster's CA.
    public var trustRoots: PEMSource

    /// Which certificates may stand for the node a peer claims to be; ``NodeIdentity/required``
    /// by default.
    public var nodeIdentity: NodeIdentity

    /// Creates a TLS configuration.
    public init(certificateChain: PEMSource, privateKey: PEMSource, trustRoots: PEMSource, nodeIdentity: NodeIdentity = .required) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
        self.nodeIdentity = nodeIdentity
    }
}

/// The TLS contexts a transport dials and accepts with, built from a ``TCPTransportTLS`` (when
/// the transport is created, and again by each reload).
struct TLSContexts: Sendable {
    let server: NIOSSLContext
    let client: NIOSSLContext
    /// What the contexts were built from.
    let settings: TCPTransportTLS

    /// Loads the certificates and the key and builds both contexts.
    ///
    /// - Throws: ``/Raft/RaftError/Code/invalidConfiguration`` naming the document that could not
    ///   be loaded, or the TLS library's complaint about the combination.
    init(_ tls: TCPTransportTLS, node: NodeID) throws(RaftError) {
        func bad(_ what: String, _ error: any Error) -> RaftError {
            RaftError(.invalidConfiguration, "TCP transport of node \(node): TLS \(what) could not be loaded: \(error)")
        }
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        let roots: [NIOSSLCertificate]
        do { chain = try Self.certificates(tls.certificateChain) } catch { throw bad("certificate chain \(tls.certificateChain.name)", error) }
        do { key = try Self.privateKey(tls.privateKey) } catch { throw bad("private key \(tls.privateKey.name)", error) }
        do { roots = try Self.certificates(tls.trustRoots) } catch { throw bad("trust roots \(tls.trustRoots.name)", error) }
        if chain.isEmpty { throw RaftError(.invalidConfiguration, "TCP transport of node \(node): the TLS certificate chain \(tls.certificateChain.name) holds no certificate") }
        if roots.isEmpty { throw RaftError(.invalidConfiguration, "TCP transport of node \(node): the TLS trust roots \(tls.trustRoots.name) hold no certificate") }

        var server = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key), trustRoots: .certificates(roots))
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        server.minimumTLSVersion = .tlsv13
        client.minimumTLSVersion = .tlsv13
        // Verified against the cluster's CA; peers are addressed by IP as often as by name.
        client.certificateVerification = .noHostnameVerification
        server.certificateVerification = .noHostnameVerification
        server.shutdownTimeout = .seconds(1)
        client.shutdownTimeout = .seconds(1)
        settings = tls
        do {
            self.server = try NIOSSLContext(configuration: server)
            self.client = try NIOSSLContext(configuration: client)
        } catch {
            throw RaftError(.invalidConfiguration, "TCP transport of node \(node): the TLS certificate, key and roots do not make a usable configuration: \(error)")
        }
    }

    static func certificates(_ source: TCPTransportTLS.PEMSource) throws -> [NIOSSLCertificate] {
        switch source {
        case .file(let path): return try NIOSSLCertificate.fromPEMFile(path)
        case .pem(let text): return try NIOSSLCertificate.fromPEMBytes(Array(text.utf8))
        }
    }

    static func privateKey(_ source: TCPTransportTLS.PEMSource) throws -> NIOSSLPrivateKey {
        switch source {
        case .file(let path): return try NIOSSLPrivateKey(file: path, format: .pem)
        case .pem(let text): return try NIOSSLPrivateKey(bytes: Array(text.utf8), format: .pem)
        }
    }
}

extension TCPTransportTLS.PEMSource {
    /// How the source is named in an error: the file's path, or "(in memory)".
    var name: String {
        switch self {
        case .file(let path): return "\"\(path)\""
        case .pem: return "(in memory)"
        }
    }
}

/// Whether `error` comes from TLS (a failed handshake: a missing, untrusted or self-signed
/// certificate, or a peer that does not speak TLS).
func isTLSFailure(_ error: any Error) -> Bool {
    error is NIOSSLError || error is BoringSSLError
}
