import NIOSSL
import Raft
import X509

/// How a certificate names the node that holds it, and the check that binds a peer's hello to
/// its certificate.
///
/// A node certificate names its node with a URI in its subject alternative names:
/// `raft://<cluster id>/node/<node id>`, the cluster id percent-encoded (every byte outside
/// `A-Z a-z 0-9 - . _ ~`) and the node id in decimal, as ``TCPTransportTLS/nodeURI(clusterID:node:)``
/// writes it. The cluster id is part of the name so that one authority can sign the nodes of
/// several clusters without a node of one passing for a node of another. URIs of other schemes
/// (and DNS names, IP addresses, the subject's common name) are ignored.
enum CertificateNodeIdentity {
    /// What a certificate names.
    struct Names {
        /// The ids this certificate names in the cluster asked about.
        var nodes: [NodeID] = []
        /// Whether it has any `raft://` URI at all (of this cluster or another).
        var namesAnyNode = false
    }

    /// The nodes `certificate` names in `clusterID`.
    ///
    /// - Throws: when the certificate or its subject alternative names cannot be decoded.
    static func names(in certificate: NIOSSLCertificate, clusterID: String) throws -> Names {
        let parsed = try Certificate(derEncoded: try certificate.toDERBytes())
        var names = Names()
        for name in try parsed.extensions.subjectAlternativeNames ?? SubjectAlternativeNames([]) {
            guard case .uniformResourceIdentifier(let uri) = name, let (cluster, node) = parse(uri) else { continue }
            names.namesAnyNode = true
            if cluster == Array(clusterID.utf8) { names.nodes.append(node) }
        }
        return names
    }

    /// The cluster id's bytes and the node id of a `raft://` node URI, or `nil` for any other
    /// URI (the scheme is matched without regard to case, as URI schemes are).
    static func parse(_ uri: String) -> (cluster: [UInt8], node: NodeID)? {
        let bytes = Array(uri.utf8)
        let scheme = Array("raft://".utf8)
        guard bytes.count > scheme.count, zip(bytes, scheme).allSatisfy({ lowercased($0) == $1 }) else { return nil }
        let rest = bytes[scheme.count...]
        guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return nil }
        let path = rest[(slash + 1)...]
        let prefix = Array("node/".utf8)
        guard path.starts(with: prefix) else { return nil }
        let digits = path.dropFirst(prefix.count)
        guard !digits.isEmpty, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            digits.first != UInt8(ascii: "0") || digits.count == 1,
            let id = UInt64(String(decoding: digits, as: UTF8.self)), id != 0,
            let cluster = percentDecoded(rest[..<slash])
        else { return nil }
        return (cluster, NodeID(rawValue: id))
    }

    /// The URI naming `node` of `clusterID`.
    static func uri(clusterID: String, node: NodeID) -> String {
        var out = "raft://"
        for byte in clusterID.utf8 {
            if isUnreserved(byte) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out + "/node/\(node.rawValue)"
    }

    /// Why a peer whose hello claims `claimed` may not use `certificate`, or `nil` if it may.
    static func refusal(claimed: NodeID, certificate: NIOSSLCertificate?, clusterID: String, policy: TCPTransportTLS.NodeIdentity) -> String? {
        guard let certificate else { return "it presented no certificate" }
        let names: Names
        do { names = try self.names(in: certificate, clusterID: clusterID) } catch {
            return "its certificate could not be read: \(error)"
        }
        if names.nodes.contains(claimed) { return nil }
        let expected = uri(clusterID: clusterID, node: claimed)
        if !names.nodes.isEmpty {
            return "it claims node \(claimed), and its certificate names node \(names.nodes.map { "\($0)" }.joined(separator: ", ")) (not \(expected))"
        }
        if names.namesAnyNode { return "it claims node \(claimed), and its certificate names no node of this cluster (not \(expected))" }
        switch policy {
        case .required:
            return "it claims node \(claimed), and its certificate names no node: it needs the subject alternative name URI \(expected) (or set TCPTransportTLS.nodeIdentity to .requiredWhenNamed)"
        case .requiredWhenNamed:
            return nil
        }
    }

    static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): return true
        default: return false
        }
    }

    static func lowercased(_ b: UInt8) -> UInt8 { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) ? b + 32 : b }

    /// `text` with its `%XX` escapes decoded, or `nil` for a broken escape.
    static func percentDecoded(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == UInt8(ascii: "%") {
                guard i + 2 < text.endIndex, let high = hexValue(text[i + 1]), let low = hexValue(text[i + 2]) else { return nil }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
