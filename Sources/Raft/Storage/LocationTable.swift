extension FileLogStorage {
    /// Where one entry's record lives.
    struct Location {
        var seq: UInt64
        var offset: Int
        var length: Int
        var term: Term
    }

    /// The locations of the log's entries, in index order, kept in fixed-size chunks.
    ///
    /// A flat array doubles as it grows, copying everything it holds and leaving the old
    /// buffer to the allocator, which keeps much of it resident: replaying a long log that way
    /// held several times the index's own size. Chunks are allocated once at their full size
    /// and never copied; dropping a prefix (compaction) frees whole chunks, and a suffix
    /// (a conflicting append) only the chunks past it.
    ///
    /// Invariant: chunk `c` holds the locations of positions `c * chunkSize - head ..<
    /// (c + 1) * chunkSize - head`; every chunk but the last is full.
    struct LocationTable {
        /// 2,048 locations of 32 bytes: 64 KiB per chunk.
        static let chunkShift = 11
        static let chunkSize = 1 << chunkShift

        private var chunks: [[Location]] = []
        /// Positions dropped from the front of the first chunk (still allocated in it).
        private var head = 0
        /// Locations held.
        private(set) var count = 0

        var isEmpty: Bool { count == 0 }

        subscript(position: Int) -> Location {
            let j = head + position
            return chunks[j >> Self.chunkShift][j & (Self.chunkSize - 1)]
        }

        mutating func append(_ location: Location) {
            if (head + count) >> Self.chunkShift == chunks.count {
                var chunk: [Location] = []
                chunk.reserveCapacity(Self.chunkSize)
                chunks.append(chunk)
            }
            chunks[chunks.count - 1].append(location)
            count += 1
        }

        /// Keeps the first `n` locations and drops the rest.
        mutating func removeSuffix(keeping n: Int) {
            guard n < count else { return }
            if n <= 0 {
                removeAll()
                return
            }
            let end = head + n
            let lastChunk = (end - 1) >> Self.chunkShift
            chunks.removeSubrange((lastChunk + 1)...)
            chunks[lastChunk].removeSubrange((((end - 1) & (Self.chunkSize - 1)) + 1)...)
            count = n
        }

        /// Drops the first `n` locations.
        mutating func removePrefix(_ n: Int) {
            guard n > 0 else { return }
            if n >= count {
                removeAll()
                return
            }
            let j = head + n
            chunks.removeFirst(j >> Self.chunkShift)
            head = j & (Self.chunkSize - 1)
            count -= n
        }

        mutating func removeAll() {
            chunks = []
            head = 0
            count = 0
        }
    }
}
