import Raft
import RaftTransportTCP

/// How a member's two addresses travel in the Raft membership.
///
/// The library keeps one opaque string per member (``Raft/ConfState/addresses``), written into
/// the membership entry of the change that added it and into every snapshot's metadata. A
/// KVStore member has two addresses, the one its peers dial (Raft over TCP) and the one its
/// clients use (HTTP), so the string holds both, as `key=value` pairs separated by `;`:
///
/// ```
/// raft=10.0.0.4:7001;http=10.0.0.4:8001
/// ```
///
/// `raft` is required; `http` may be missing (redirects to that member then answer 503).
/// Unknown keys are ignored, so a later version can add some. A bare `HOST:PORT` (the form the
/// TCP transport itself reads) is taken as the raft address alone.
///
/// Every node learns a member's addresses from the log this way, so a member added at run time
/// (`POST /cluster/members`) is dialled by the transport and redirected to by the HTTP API on
/// every node, with no restart and no change to anyone's command line.
extension KVMember {
    /// This member's addresses in the membership's form, `raft=HOST:PORT;http=HOST:PORT`.
    public var membershipAddress: String {
        "raft=\(raftAddress)" + (httpAddress.map { ";http=\($0)" } ?? "")
    }

    /// Checks that this member can travel in the membership: both hosts follow host name or IP
    /// address rules (so no `;`, `=`, `/` or space can break ``membershipAddress`` apart), and
    /// ``membershipAddress`` reads back as this very member. A membership entry is permanent
    /// once committed, so this runs before a change is proposed.
    ///
    /// - Throws: ``Raft/RaftError/Code/invalidArgument`` saying which address is wrong.
    public func checkMembershipAddress() throws(RaftError) {
        try Self.checkHost(raftAddress.host, of: "raft")
        if let httpAddress { try Self.checkHost(httpAddress.host, of: "http") }
        let back = try KVMember(id: id, membershipAddress: membershipAddress)
        guard back == self else {
            throw RaftError(.invalidArgument, "the membership address '\(membershipAddress)' would read back as \(back), not \(self)")
        }
    }

    /// A host name (labels of 1 to 63 letters, digits and `-`, not starting or ending with
    /// `-`, separated by `.`; an IPv4 address is one) or an IPv6 address (hex digits, `:` and
    /// `.`), at most 253 characters.
    static func checkHost(_ host: String, of which: String) throws(RaftError) {
        func refuse(_ why: String) -> RaftError {
            RaftError(.invalidArgument, "the \(which) host '\(host)' \(why)")
        }
        guard !host.isEmpty, host.utf8.count <= 253 else { throw refuse("must have 1 to 253 characters") }
        if host.contains(":") {
            let allowed = Set("0123456789abcdefABCDEF:.")
            guard host.allSatisfy(allowed.contains), host.count(where: { $0 == ":" }) >= 2 else {
                throw refuse("is not an IPv6 address (hex digits, ':' and '.')")
            }
            return
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count), label.allSatisfy(allowed.contains), label.first != "-", label.last != "-" else {
                throw refuse("is not a host name or IP address (labels of letters, digits and '-', separated by '.')")
            }
        }
    }

    /// Reads member `id`'s addresses from its membership address (``membershipAddress``).
    ///
    /// - Throws: ``Raft/RaftError/Code/invalidArgument`` when there is no raft address or an
    ///   address does not parse.
    public init(id: NodeID, membershipAddress text: String) throws(RaftError) {
        guard text.contains("=") else {
            self.init(id: id, raftAddress: try PeerAddress(parsing: text))
            return
        }
        var raft: PeerAddress?
        var http: PeerAddress?
        for pair in text.split(separator: ";") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else {
                throw RaftError(.invalidArgument, "'\(text)' is not a member address: expected raft=HOST:PORT;http=HOST:PORT")
            }
            switch kv[0] {
            case "raft": raft = try PeerAddress(parsing: kv[1])
            case "http": http = try PeerAddress(parsing: kv[1])
            default: continue
            }
        }
        guard let raft else { throw RaftError(.invalidArgument, "'\(text)' names no raft address: expected raft=HOST:PORT[;http=HOST:PORT]") }
        self.init(id: id, raftAddress: raft, httpAddress: http)
    }
}
