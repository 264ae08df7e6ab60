/// How one Raft node behaves. Validate with ``validate()`` (``RaftCore`` does it for you).
public struct RaftConfiguration: Sendable, Hashable {
    /// This node's id. Must not be zero.
    public var id: NodeID
    /// Ticks without hearing from a leader before a follower starts an election. The actual
    /// timeout is drawn at random from `electionTicks ..< 2 * electionTicks` (§5.2) after every
    /// reset. Must be larger than `heartbeatTicks`; ten times larger is typical.
    public var electionTicks: Int = 10
    /// Ticks between heartbeats sent by a leader. Must be at least one.
    public var heartbeatTicks: Int = 1
    /// Run a pre-vote round before a real election (thesis §9.6): a node that cannot win does
    /// not bump its term, so a partitioned node rejoining does not disrupt a healthy leader.
    public var preVote: Bool = true
    /// A leader that has not heard from a quorum within an election timeout steps down
    /// (thesis §6.2), and followers ignore vote requests while they have a live leader.
    public var checkQuorum: Bool = true
    /// Maximum bytes of entries (``LogEntry/byteSize``) in one append message. At least one entry
    /// is always sent, whatever its size.
    public var maxMessageBytes: Int = 1 << 20
    /// Maximum append messages in flight to one follower in the replicate state. Must be at least one.
    public var maxInflightMessages: Int = 256
    /// Maximum bytes of entries in flight to one follower; zero means unlimited.
    public var maxInflightBytes: Int = 0
    /// Maximum bytes of entries in flight to a follower that is catching up: one that lacks
    /// more committed entries than a message of a quarter of this size carries (a learner just
    /// added, a follower back from a partition or a restart). Its messages are that quarter in
    /// size (or ``maxMessageBytes`` if smaller), and one more may be in flight past the limit.
    /// A follower that keeps up, lacking only entries not yet committed, is not limited. So
    /// replaying a long log to one follower does not flood the leader's loop, the network or
    /// the follower's disk ahead of the entries the quorum waits for; commits keep about their
    /// usual latency while the other followers make a quorum (when the quorum needs the
    /// catching-up follower, commits wait for its catch-up, as without the limit). The target of
    /// a leadership transfer is exempt. `raft-membership-bench` in the repository's Benchmarks
    /// shows the difference. Zero means no separate limit: ``maxMessageBytes`` and
    /// ``maxInflightBytes`` alone apply; otherwise at least 4 KiB. Raise it where catch-up time
    /// matters more than commit latency.
    public var catchUpMaxInflightBytes: Int = 64 << 10
    /// Maximum payload bytes a leader holds appended but not yet committed; proposals beyond it
    /// fail with ``RaftError/Code/uncommittedLimitExceeded``. Zero means unlimited.
    public var maxUncommittedBytes: Int = 64 << 20
    /// Maximum bytes of committed entries handed out in one ``Ready``; zero means unlimited.
    public var maxCommittedBytesPerReady: Int = 64 << 20
    /// When `true` a follower refuses proposals with ``RaftError/Code/notLeader`` and the
    /// leader's id; when `false` it forwards them to the leader it knows.
    public var refuseProposalsOnFollower: Bool = false
    /// What a leader puts in an ``InstallSnapshot`` for a follower behind its compacted log.
    /// ``RaftNode`` always uses ``SnapshotSending/streamedByShell``.
    public var snapshotSending: SnapshotSending = .inMessage
    /// Lease reads (thesis §6.4.1): `nil` (the default) confirms every read with a quorum round.
    /// When set, a read asking for ``ReadConfirmation/lease`` is answered by a leader without a
    /// round while its lease holds. Requires ``checkQuorum`` (followers that hear from a leader
    /// refuse to vote for anyone else for an election timeout: that refusal is the lease).
    public var readLease: ReadLease?
    /// Heartbeat rounds confirming reads a leader keeps unanswered at most; zero means no
    /// limit. A read that arrives while that many are out waits for the next round, which leaves
    /// as soon as one of them is answered by a quorum (or with the next heartbeat, if answers
    /// were lost): under many concurrent reads a round then confirms a larger batch, and the
    /// cluster handles fewer heartbeats per read, at the cost of up to one more round trip per
    /// read. The default, one, is what etcd's server does (one read-index request in flight,
    /// shared by every read queued meanwhile); on a two-core machine it gave the most reads per
    /// second (Benchmarks/README.md, `raft-read-bench --read-rounds`).
    public var maxReadRoundsInFlight: Int = 1
    /// Seed of the generator that randomizes election timeouts. Mixed with `id`, so nodes of a
    /// cluster may share one seed and still draw different timeouts.
    public var randomSeed: UInt64 = 0x5EED

    /// Creates a configuration with defaults for every tuning knob.
    public init(id: NodeID) { self.id = id }

    /// Checks the configuration and throws ``RaftError/Code/invalidConfiguration`` naming the
    /// field to fix.
    public func validate() throws(RaftError) {
        func refuse(_ why: String) -> RaftError { RaftError(.invalidConfiguration, why) }
        if id.isNone { throw refuse("id must not be zero: zero means \"no node\"") }
        if heartbeatTicks < 1 { throw refuse("heartbeatTicks must be at least 1, got \(heartbeatTicks)") }
        if electionTicks <= heartbeatTicks {
            throw refuse("electionTicks (\(electionTicks)) must be larger than heartbeatTicks (\(heartbeatTicks)); ten times larger is typical")
        }
        if maxReadRoundsInFlight < 0 { throw refuse("maxReadRoundsInFlight must not be negative; use 0 for unlimited") }
        if maxInflightMessages < 1 { throw refuse("maxInflightMessages must be at least 1, got \(maxInflightMessages)") }
        if maxMessageBytes < 1 { throw refuse("maxMessageBytes must be at least 1, got \(maxMessageBytes)") }
        if maxInflightBytes < 0 { throw refuse("maxInflightBytes must not be negative; use 0 for unlimited") }
        if maxInflightBytes > 0 && maxInflightBytes < maxMessageBytes {
            throw refuse("maxInflightBytes (\(maxInflightBytes)) must be 0 (unlimited) or at least maxMessageBytes (\(maxMessageBytes))")
        }
        if catchUpMaxInflightBytes < 0 || (catchUpMaxInflightBytes > 0 && catchUpMaxInflightBytes < 4096) {
            throw refuse("catchUpMaxInflightBytes must be 0 (no separate limit) or at least 4096, got \(catchUpMaxInflightBytes)")
        }
        if maxUncommittedBytes < 0 { throw refuse("maxUncommittedBytes must not be negative; use 0 for unlimited") }
        if maxCommittedBytesPerReady < 0 { throw refuse("maxCommittedBytesPerReady must not be negative; use 0 for unlimited") }
        if let lease = readLease {
            if !checkQuorum {
                throw refuse("readLease requires checkQuorum: without it followers do not refuse votes while they hear from a leader, so a lease guarantees nothing")
            }
            guard lease.maxClockDrift >= 0, lease.maxClockDrift < 0.5 else {
                throw refuse("readLease.maxClockDrift must be in 0 ..< 0.5 (a fraction of the tick rate), got \(lease.maxClockDrift)")
            }
            if lease.ticks(electionTicks: electionTicks) < heartbeatTicks {
                throw refuse(
                    "readLease: with electionTicks \(electionTicks) and maxClockDrift \(lease.maxClockDrift) the lease (\(lease.ticks(electionTicks: electionTicks)) ticks) is shorter than the heartbeat interval (\(heartbeatTicks) ticks), so it would never hold; raise electionTicks")
            }
        }
    }

    /// Checks a membership: at least one voter, no zero id, no id listed twice in a list, no
    /// learner that is also a voter of the new configuration, addresses only for members.
    public static func validate(_ conf: ConfState) throws(RaftError) {
        func refuse(_ why: String) -> RaftError { RaftError(.invalidConfiguration, why) }
        if conf.voters.isEmpty {
            throw refuse("the voter set is empty: bootstrap the storage with at least one voter")
        }
        for (name, list) in [("voter", conf.voters), ("outgoing voter", conf.outgoingVoters), ("learner", conf.learners)] {
            if list.contains(.none) { throw refuse("\(name) id 0 is reserved for \"no node\"") }
            for i in list.indices.dropFirst() where list[i] == list[i - 1] {
                throw refuse("\(name) \(list[i]) is listed more than once")
            }
        }
        for l in conf.learners where conf.voters.contains(l) {
            throw refuse("node \(l) is both a voter and a learner")
        }
        for id in conf.addresses.keys where !conf.contains(id) {
            throw refuse("an address is given for node \(id), which is not a member")
        }
    }
}

/// The assumptions behind lease reads (``RaftConfiguration/readLease``, thesis §6.4.1).
///
/// A leader's lease starts when it *sends* a heartbeat round and holds once a quorum (the
/// leader counting itself) answered that round or a later one. It lasts
/// ``ticks(electionTicks:)`` of the leader's ticks: a follower that heard from the leader
/// refuses to vote for another candidate until `electionTicks` of *its* ticks have passed, so no
/// other leader can be elected before then.
///
/// The bound this relies on, and which you must guarantee: **every node's ticks run at the
/// configured rate within a factor of `1 ± maxClockDrift`** of each other. Clock rate drift of
/// ordinary machines is far below 1%; what breaks the bound in practice is a node whose ticks
/// stop while the rest of the cluster goes on: a process paused (SIGSTOP, a debugger, a VM
/// migration) or a run loop stalled longer than the lease. A ``RaftNode`` refuses to use a
/// lease while its own ticks are late (it falls back to a quorum round), which covers its own
/// pauses as seen by its clock, but not a clock that jumps. Use quorum reads when you cannot
/// bound these.
public struct ReadLease: Sendable, Hashable {
    /// The largest relative difference between the tick rates of two nodes, as a fraction
    /// (`0.1` is ten percent). Must be in `0 ..< 0.5`.
    public var maxClockDrift: Double

    /// Creates a lease option.
    public init(maxClockDrift: Double = 0.1) { self.maxClockDrift = maxClockDrift }

    /// How many ticks after sending a round a leader may serve reads on the lease that round
    /// confirms: the `electionTicks - 1` full ticks a follower is certain to wait before it
    /// votes again, shrunk by the drift, less two ticks: one for the granularity of the
    /// leader's own count (it may be almost a tick past its last one), one for a tick handled
    /// late (a ``RaftNode`` whose last tick is more than one interval old does not use its
    /// lease at all). 6 ticks with `electionTicks` 10 and a drift of 0.1.
    public func ticks(electionTicks: Int) -> Int {
        Int((Double(electionTicks - 1) * (1 - maxClockDrift)).rounded(.down)) - 2
    }
}

/// What a leader's ``InstallSnapshot`` messages carry (``RaftConfiguration/snapshotSending``).
public enum SnapshotSending: Sendable, Hashable {
    /// The snapshot's bytes (``SnapshotData/bytes(_:)``), read with ``LogStorage/snapshot()``:
    /// for shells that move snapshots whole, such as simulations.
    case inMessage
    /// Only the metadata (``SnapshotData/inSenderStorage``): the core reads no snapshot data,
    /// and the shell streams the storage's latest snapshot to the follower itself, off its run
    /// loop (``LogStorage/openSnapshot(verification:)``).
    case streamedByShell
}

/// A small, fast, seedable generator (SplitMix64), so that every run of a core replays exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
