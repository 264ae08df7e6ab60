/// The one error type of the library: an extensible ``Code``, a human-readable message that says
/// what to fix, and the source location that raised it.
public struct RaftError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as a value callers can switch on. New codes may be added in minor
    /// releases, so switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidConfiguration, notLeader, proposalDropped, uncommittedLimitExceeded
            case compacted, unavailable, snapshotTemporarilyUnavailable, snapshotOutOfDate
            case unknownPeer, storage, io, noSpace, corruption, unsupportedFormat, invalidMessage, timeout, stopped, stateMachine
            case invalidArgument, membershipChangeInProgress, leadershipTransferInProgress
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A configuration or membership was refused; the message says which field and why.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// This node is not the leader; ``RaftError/leaderHint`` names the leader when known.
        public static let notLeader = Code(.notLeader)
        /// The proposal was lost or its outcome is unknown: a leader change replaced its entry, or
        /// a snapshot superseded it before it was applied here (then it may have been
        /// committed). Retry only if the command is idempotent or the state says it is missing.
        public static let proposalDropped = Code(.proposalDropped)
        /// Backpressure: the leader holds more uncommitted bytes than configured.
        public static let uncommittedLimitExceeded = Code(.uncommittedLimitExceeded)
        /// Storage: the requested index is below the first retained entry (compacted away).
        public static let compacted = Code(.compacted)
        /// Storage: the requested index is beyond the last entry.
        public static let unavailable = Code(.unavailable)
        /// Storage: a snapshot is being prepared; ask again later.
        public static let snapshotTemporarilyUnavailable = Code(.snapshotTemporarilyUnavailable)
        /// Storage: the snapshot offered is older than the one already held.
        public static let snapshotOutOfDate = Code(.snapshotOutOfDate)
        /// A call's argument cannot be acted on (an empty proposal, an empty read context); the
        /// message says which. Nothing changed.
        public static let invalidArgument = Code(.invalidArgument)
        /// A command named a node that is not a member.
        public static let unknownPeer = Code(.unknownPeer)
        /// A membership change was refused because another one is not finished: its entry is not
        /// committed yet, the cluster is still in a joint configuration, or a new leader has not
        /// yet committed an entry of its term. Nothing changed; retry once the pending change
        /// completes (``RaftStatus/membership`` shows it).
        public static let membershipChangeInProgress = Code(.membershipChangeInProgress)
        /// The leader is handing leadership over (``RaftCore/transferLeadership(to:)``) and takes no
        /// proposals or membership changes meanwhile. Nothing changed; retry on the new leader
        /// (``RaftError/leaderHint`` names the target).
        public static let leadershipTransferInProgress = Code(.leadershipTransferInProgress)
        /// A peer's message is malformed (entries out of order, indexes past what the protocol
        /// allows, an invalid membership); it was not applied. The message says what was wrong.
        public static let invalidMessage = Code(.invalidMessage)
        /// A proposal got no result within its deadline; it may still be committed later.
        public static let timeout = Code(.timeout)
        /// The node was stopped (or stopped on an error) before the request completed.
        public static let stopped = Code(.stopped)
        /// The state machine failed or broke its contract (results, applied index); the node
        /// stopped without applying anything further.
        public static let stateMachine = Code(.stateMachine)
        /// The storage failed for another reason; the message says which.
        public static let storage = Code(.storage)
        /// A file operation failed (the message names the file and the system error).
        public static let io = Code(.io)
        /// A write failed because the disk is full (`ENOSPC`, or `EDQUOT` for a quota; a state
        /// machine reports its own full disk with this code too). The storage refuses writes
        /// until reopened and the node stops; nothing acknowledged is lost, and a write that was
        /// under way may or may not have been kept. Free space, then start the node again on the
        /// same files: it recovers as after a crash.
        public static let noSpace = Code(.noSpace)
        /// Stored data failed its checks (bad checksum, missing segment); the message names the
        /// file and the offset. Nothing was dropped: the storage refuses to open instead.
        public static let corruption = Code(.corruption)
        /// A file was written by a newer or unknown format version.
        public static let unsupportedFormat = Code(.unsupportedFormat)

        public var description: String { "\(base)" }
    }

    /// What went wrong.
    public var code: Code
    /// What happened and what to do about it.
    public var message: String
    /// For ``Code/notLeader``: the leader this node knows of, if any.
    public var leaderHint: NodeID?
    /// With ``Code/notLeader`` from a ``RaftNode``: where clients reach the leader, from
    /// ``RaftNodeConfiguration/clientAddresses``, when known.
    public var leaderAddress: String?
    /// Source file that raised the error.
    public var file: String
    /// Source line that raised the error.
    public var line: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, leaderHint: NodeID? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.leaderHint = leaderHint
        self.file = file
        self.line = line
    }

    public var description: String {
        var s = "RaftError.\(code): \(message)"
        if let leaderHint { s += " (leader: \(leaderHint)\(leaderAddress.map { " at \($0)" } ?? ""))" }
        return s + " [\(file):\(line)]"
    }
}
