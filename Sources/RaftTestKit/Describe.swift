import Raft

/// Human-readable, deterministic renderings used by scenario files and failure reports.
public enum Describe {
    /// Bytes as text when printable, otherwise as a size.
    public static func data(_ d: [UInt8]) -> String {
        if d.count <= 32, d.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return "'" + String(decoding: d, as: UTF8.self) + "'" }
        return "<\(d.count) bytes>"
    }

    /// An entry as `index/term` plus its payload.
    public static func entry(_ e: LogEntry) -> String {
        let payload: String
        switch e.kind {
        case .noop: payload = "noop"
        case .command: payload = data(e.data)
        case .membership: payload = (try? ConfState(decoding: e.data[...])).map(membership) ?? "membership <\(e.data.count) bytes, malformed>"
        }
        return "\(e.index)/\(e.term) " + payload
    }

    /// A membership on one line: `voters=1,2,3`, plus learners, the outgoing voters of a joint
    /// change (and whether it is left by hand), and addresses when any.
    public static func membership(_ c: ConfState) -> String {
        func ids(_ list: [NodeID]) -> String { list.map(\.description).joined(separator: ",") }
        var s = "voters=" + ids(c.voters)
        if !c.learners.isEmpty { s += " learners=" + ids(c.learners) }
        if c.isJoint { s += " outgoing=" + ids(c.outgoingVoters) + (c.autoLeave ? "" : " manual-leave") }
        if !c.addresses.isEmpty {
            s += " addresses=" + c.addresses.keys.sorted().map { "\($0)@\(c.addresses[$0]!)" }.joined(separator: ",")
        }
        return s
    }

    /// A list of entries, compacted when long.
    public static func entries(_ es: [LogEntry]) -> String {
        if es.count > 6 {
            return "[\(entry(es[0])), ... \(es.count - 2) more ..., \(entry(es[es.count - 1]))]"
        }
        return "[" + es.map(entry).joined(separator: ", ") + "]"
    }

    /// A follower's read-index context as it travels: the caller's context and the core's
    /// 8-byte sequence number, shown as `'context'#sequence`.
    static func forwardedContext(_ c: [UInt8]) -> String {
        guard c.count > 8 else { return data(c) }
        let sequence = c.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return data(Array(c.dropLast(8))) + "#\(sequence)"
    }

    /// One message on one line.
    public static func message(_ m: Message) -> String {
        let head = "\(m.from)->\(m.to) "
        switch m.kind {
        case .preVote(let r):
            return head + "preVote term=\(m.term) last=\(r.lastLogIndex)/\(r.lastLogTerm)"
        case .preVoteResponse(let r):
            return head + "preVoteResponse term=\(m.term) " + (r.granted ? "granted" : "rejected")
        case .requestVote(let r):
            return head + "requestVote term=\(m.term) last=\(r.lastLogIndex)/\(r.lastLogTerm)" + (r.leadershipTransfer ? " transfer" : "")
        case .requestVoteResponse(let r):
            return head + "requestVoteResponse term=\(m.term) " + (r.granted ? "granted" : "rejected")
        case .appendEntries(let a):
            var s = head + "appendEntries term=\(m.term) prev=\(a.prevLogIndex)/\(a.prevLogTerm) commit=\(a.leaderCommit)"
            if !a.entries.isEmpty { s += " entries=" + entries(a.entries) }
            return s
        case .appendEntriesResponse(let r):
            if r.reject {
                return head + "appendEntriesResponse term=\(m.term) reject index=\(r.index) hint=\(r.rejectHint)/\(r.rejectHintTerm)"
            }
            return head + "appendEntriesResponse term=\(m.term) index=\(r.index)"
        case .heartbeat(let h):
            return head + "heartbeat term=\(m.term) commit=\(h.commit)" + (h.round == 0 ? "" : " round=\(h.round)")
        case .heartbeatResponse(let h):
            return head + "heartbeatResponse term=\(m.term)" + (h.round == 0 ? "" : " round=\(h.round)")
        case .installSnapshot(let s):
            let md = s.metadata
            return head + "installSnapshot term=\(m.term) snapshot=\(md.index)/\(md.term) " + membership(md.confState)
        case .forwardProposal(let p):
            return head + "forwardProposal commands=[" + p.commands.map(data).joined(separator: ", ") + "]"
        case .snapshotChunk(let c):
            return head + "snapshotChunk term=\(m.term) transfer=\(c.transfer) snapshot=\(c.metadata.index) bytes=\(c.offset)+\(c.data.count)" + (c.last ? " last" : "")
        case .snapshotChunkAck(let a):
            return head + "snapshotChunkAck term=\(m.term) transfer=\(a.transfer) next=\(a.next)" + (a.rejected ? " rejected" : "") + (a.sealing ? " sealing" : "")
        case .readIndex(let r):
            return head + "readIndex term=\(m.term) context=\(forwardedContext(r.context))" + (r.confirmation == .lease ? " lease" : "")
        case .readIndexResponse(let r):
            return head + "readIndexResponse term=\(m.term) context=\(forwardedContext(r.context)) index=\(r.index)"
        case .timeoutNow:
            return head + "timeoutNow term=\(m.term)"
        }
    }
}
