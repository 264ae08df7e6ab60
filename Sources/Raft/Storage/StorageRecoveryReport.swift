/// What ``FileLogStorage`` found and repaired when it opened.
public struct StorageRecoveryReport: Sendable, Hashable {
    /// A torn tail cut off the newest segment: what was cut, and why recovery took the damage
    /// for an interrupted write.
    public struct TruncatedTail: Sendable, Hashable {
        /// Why the damaged record was taken for an interrupted write rather than corruption.
        public enum Reason: Sendable, Hashable {
            /// The file ends inside the record, or fewer than 8 bytes (a frame) are left: a
            /// write cut short.
            case incompleteRecord
            /// The record is whole in size but fails its checksum, and nothing but zeros
            /// follows it: its data never fully arrived.
            case damagedLastRecord
            /// The record reaches into a 512-byte sector that holds nothing but zeros from the
            /// record on: a sector of an unsynced write that never reached the disk while later
            /// ones did. Intact records may follow the damage; they are cut too. After a power
            /// loss they are records whose sync never returned; but a synced record damaged by
            /// the disk in exactly this shape is cut the same way, with every record after it
            /// (``entries`` and ``hardStates`` say what that was). The term and vote never go
            /// back with the cut: see ``StorageRecoveryReport/restoredHardState``.
            case lostSector
        }

        /// The segment's path.
        public var file: String
        /// Where the damaged record starts; the file was truncated there.
        public var offset: Int
        /// Bytes cut off (from `offset` to the end of the file).
        public var bytes: Int
        /// Why the damage was taken for a torn write.
        public var reason: Reason
        /// The lowest and highest index of the entry records in the cut bytes that still pass
        /// their checksums; `nil` if there are none. The damaged record itself is not counted:
        /// its contents cannot be trusted.
        public var entries: ClosedRange<LogIndex>?
        /// The hard-state records in the cut bytes that still pass their checksums, in file
        /// order.
        public var hardStates: [HardState]
        /// Whether the search of the cut bytes for intact entry records was complete. The
        /// search checksums at most about twice the cut bytes (so that an open stays linear
        /// in the segment's size whatever the damage holds); `false` if it stopped checking
        /// entry records there, so ``entries`` may miss some. Hard-state records are always
        /// searched for in full.
        public var complete: Bool

        /// Creates a description of a cut tail.
        public init(
            file: String, offset: Int, bytes: Int, reason: Reason, entries: ClosedRange<LogIndex>? = nil, hardStates: [HardState] = [],
            complete: Bool = true
        ) {
            self.file = file
            self.offset = offset
            self.bytes = bytes
            self.reason = reason
            self.entries = entries
            self.hardStates = hardStates
            self.complete = complete
        }
    }

    /// A torn record at the end of the newest segment (a write interrupted by a crash), cut off
    /// with everything after it. After a crash, what it held had not been reported durable;
    /// after damage by the disk it may have been (see ``TruncatedTail/Reason/lostSector``).
    public var truncatedTail: TruncatedTail?
    /// A segment whose header was never completely written (a crash while starting it), removed.
    public var removedEmptySegment: String?
    /// Temporary snapshot files removed (a crash while writing a snapshot).
    public var removedTemporaryFiles: [String] = []
    /// Snapshot files that failed their checks, newest first; an older one was used.
    public var skippedSnapshots: [String] = []
    /// Files in the log directory that are not segments; left alone.
    public var unknownFiles: [String] = []
    /// An installed snapshot whose log reset had not been recorded before a crash; completed.
    public var completedSnapshotInstall: LogIndex?
    /// Entries the durable hard state says were committed but the log no longer holds: its
    /// commit index (the upper bound) is beyond the last index recovered (the lower bound minus
    /// one). Records at the end of the log were lost although they had been synced (a cut at
    /// a record boundary, which framing cannot detect). The node's core clamps its commit index
    /// to the log and gets the entries again from the leader; the hard state is left as it
    /// was. Most such cuts leave no trace at all: see "What recovery cannot tell apart" in
    /// Storage formats.
    public var lostCommittedEntries: ClosedRange<LogIndex>?
    /// The term and vote recovery kept from a hard-state record in a cut torn tail, because
    /// they were above those of the last hard state before the cut (with the commit index of
    /// that one): recovery never lowers the term or the vote. Written to the log again before
    /// the open returns. `nil` when no cut hard state was above the surviving one.
    public var restoredHardState: HardState?
    /// Segments and entries loaded.
    public var segments = 0
    /// Entries in the log after recovery.
    public var entries = 0
}
