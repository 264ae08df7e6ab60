import Raft
import Synchronization

extension TCPTransport {
    /// Loads the TLS certificate chain, private key and trust roots again, for the connections
    /// made from now on: rotate certificates without restarting the node.
    ///
    /// With no argument, the sources the transport runs with are read again (files are re-read;
    /// in-memory PEM stays what it was); with `tls`, its sources replace them (and its
    /// ``TCPTransportTLS/nodeIdentity``), for this call and every later one without an argument.
    /// ``configuration`` keeps what the transport was created with.
    ///
    /// Connections already open keep the certificates they were made with and go on working; a
    /// peer's certificate is checked once per connection, at its handshake. Every connection
    /// dialled or accepted after the call returns presents the new certificate and checks peers
    /// against the new trust roots. To retire an authority, first give every node trust roots
    /// holding both the old and the new one, then move every node to a certificate of the new
    /// one, then drop the old one from the roots.
    ///
    /// - Throws: ``/Raft/RaftError/Code/invalidConfiguration`` when the transport runs plain TCP,
    ///   or when the documents cannot be loaded or do not make a usable configuration (naming
    ///   which); the transport then goes on with what it had.
    public func reloadTLS(_ tls: TCPTransportTLS? = nil) throws(RaftError) {
        guard let reloadable = self.tls else {
            throw RaftError(.invalidConfiguration, "TCP transport of node \(configuration.nodeID) runs plain TCP: there is no TLS to reload")
        }
        let settings = tls ?? reloadable.contexts.settings
        let contexts = try TLSContexts(settings, node: configuration.nodeID)
        reloadable.replace(contexts)
        logger.info("reloaded the TLS certificates", metadata: ["raft.tcp.certificate": "\(settings.certificateChain.name)"])
    }
}

/// The TLS contexts new connections start with, replaced whole by ``TCPTransport/reloadTLS(_:)``.
/// A connection takes the contexts current when it starts and keeps them.
final class ReloadableTLS: Sendable {
    private let current: Mutex<TLSContexts>

    init(_ contexts: TLSContexts) { current = Mutex(contexts) }

    /// The contexts a connection starting now uses.
    var contexts: TLSContexts { current.withLock { $0 } }

    func replace(_ contexts: TLSContexts) { current.withLock { $0 = contexts } }
}
