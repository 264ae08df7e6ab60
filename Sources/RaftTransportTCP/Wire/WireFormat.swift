import Raft

/// The binary format peers speak over a connection: frames, each a fixed 16-byte header and a
/// payload, documented byte by byte in <doc:WireFormatSpecification>.
///
/// Header integers are big endian (network byte order); a message payload's integers are
/// mostly varints. Each frame carries a magic number, the format version, the frame kind, the
/// payload's length and a CRC-32C (``/Raft/CRC32C``) of the header and the payload. A connection starts with one ``Hello`` each way; after it, only messages.
///
/// The encoder never writes a frame larger than the configured limit, and ``WireFrameDecoder``
/// refuses a length above it before it waits for (or allocates) the payload.
public enum WireFormat {
    /// The first four bytes of every frame: the ASCII bytes `RFTW`.
    public static let magic: [UInt8] = [0x52, 0x46, 0x54, 0x57]
    /// The format version this library writes and reads. Version 3 made message payloads
    /// compact: varints for integers, an append's entry indexes implied by its previous index
    /// and its entries' terms given once per run, an append answer carrying only its nonzero
    /// fields. Version 2 added the membership to snapshot metadata, the leadership-transfer flag
    /// of vote requests and ``FrameKind/timeoutNow``. A peer speaking an earlier version is
    /// refused at the handshake.
    public static let version: UInt8 = 3
    /// The version in the header of every ``Hello`` frame, whatever the version spoken: a hello's
    /// layout never changes, so any version of the library can read it and refuse a peer it
    /// cannot talk to with a clear reason.
    public static let helloHeaderVersion: UInt8 = 1
    /// The lowest version a peer may state in its hello: this library speaks only ``version``.
    public static let minimumPeerVersion: UInt8 = 3
    /// The size of a frame's header, in bytes.
    public static let headerSize = 16
    /// The default limit on one frame, header included: 16 MiB.
    public static let defaultMaxFrameBytes = 16 << 20
    /// The smallest frame limit a transport accepts: room for a hello and small messages.
    public static let minimumMaxFrameBytes = 4096
    /// The longest cluster id a hello carries, in UTF-8 bytes.
    public static let maxClusterIDBytes = 255

    /// What a frame holds; the byte at offset 5 of its header.
    public enum FrameKind: UInt8, Sendable, CaseIterable {
        /// A ``Hello``: the handshake.
        case hello = 0x01
        /// A message of kind ``/Raft/Message/Kind/preVote(_:)``.
        case preVote = 0x10
        /// A message of kind ``/Raft/Message/Kind/preVoteResponse(_:)``.
        case preVoteResponse = 0x11
        /// A message of kind ``/Raft/Message/Kind/requestVote(_:)``.
        case requestVote = 0x12
        /// A message of kind ``/Raft/Message/Kind/requestVoteResponse(_:)``.
        case requestVoteResponse = 0x13
        /// A message of kind ``/Raft/Message/Kind/appendEntries(_:)``.
        case appendEntries = 0x14
        /// A message of kind ``/Raft/Message/Kind/appendEntriesResponse(_:)``.
        case appendEntriesResponse = 0x15
        /// A message of kind ``/Raft/Message/Kind/heartbeat(_:)``.
        case heartbeat = 0x16
        /// A message of kind ``/Raft/Message/Kind/heartbeatResponse(_:)``.
        case heartbeatResponse = 0x17
        /// A message of kind ``/Raft/Message/Kind/installSnapshot(_:)``.
        case installSnapshot = 0x18
        /// A message of kind ``/Raft/Message/Kind/forwardProposal(_:)``.
        case forwardProposal = 0x19
        /// A message of kind ``/Raft/Message/Kind/snapshotChunk(_:)``.
        case snapshotChunk = 0x1A
        /// A message of kind ``/Raft/Message/Kind/snapshotChunkAck(_:)``.
        case snapshotChunkAck = 0x1B
        /// A message of kind ``/Raft/Message/Kind/readIndex(_:)``.
        case readIndex = 0x1C
        /// A message of kind ``/Raft/Message/Kind/readIndexResponse(_:)``.
        case readIndexResponse = 0x1D
        /// A message of kind ``/Raft/Message/Kind/timeoutNow``.
        case timeoutNow = 0x1E

        /// The frame kind that carries a message of this kind.
        public init(_ kind: Message.Kind) {
            switch kind {
            case .preVote: self = .preVote
            case .preVoteResponse: self = .preVoteResponse
            case .requestVote: self = .requestVote
            case .requestVoteResponse: self = .requestVoteResponse
            case .appendEntries: self = .appendEntries
            case .appendEntriesResponse: self = .appendEntriesResponse
            case .heartbeat: self = .heartbeat
            case .heartbeatResponse: self = .heartbeatResponse
            case .installSnapshot: self = .installSnapshot
            case .forwardProposal: self = .forwardProposal
            case .snapshotChunk: self = .snapshotChunk
            case .snapshotChunkAck: self = .snapshotChunkAck
            case .readIndex: self = .readIndex
            case .readIndexResponse: self = .readIndexResponse
            case .timeoutNow: self = .timeoutNow
            }
        }
    }
}

/// One decoded frame.
public enum WireFrame: Sendable, Hashable {
    /// The handshake.
    case hello(Hello)
    /// A Raft message.
    case message(Message)
}

/// The handshake each side of a connection sends first: who it is, which cluster it belongs to,
/// the format version it speaks, and what the connection carries.
///
/// The dialing side sends its hello first. The accepting side checks it (the same cluster id, a
/// sender that is a configured member other than itself, a receiver that is itself, a version
/// it speaks) and answers with its own hello, or closes the connection. Messages flow only from
/// the dialing side to the accepting side: each node dials each peer it sends to.
public struct Hello: Sendable, Hashable {
    /// What a connection carries.
    public enum Lane: UInt8, Sendable, Hashable, CaseIterable {
        /// Every message except snapshot chunks: votes, appends, heartbeats and their answers.
        case messages = 0
        /// Snapshot chunks only, so a large transfer never delays heartbeats and appends.
        case snapshots = 1
    }

    /// The cluster the sender belongs to; peers with different ids never talk.
    public var clusterID: String
    /// The sending node.
    public var sender: NodeID
    /// The node the sender believes it is talking to.
    public var receiver: NodeID
    /// The highest format version the sender speaks (``WireFormat/version`` for this library).
    public var version: UInt8
    /// What this connection carries.
    public var lane: Lane

    /// Creates a hello.
    public init(clusterID: String, sender: NodeID, receiver: NodeID, version: UInt8 = WireFormat.version, lane: Lane = .messages) {
        self.clusterID = clusterID
        self.sender = sender
        self.receiver = receiver
        self.version = version
        self.lane = lane
    }
}
