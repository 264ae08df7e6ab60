/// The append messages in flight to one follower: a bounded ring of (last index, bytes).
///
/// Invariant: `count <= capacity`; indexes in the ring increase from oldest to newest.
struct Inflights {
    let capacity: Int
    /// Byte limit over all messages in flight (0 = unlimited).
    let maxBytes: Int
    private var ring: [(index: LogIndex, bytes: Int)] = []
    private var start = 0
    private(set) var count = 0
    private(set) var bytes = 0

    init(capacity: Int, maxBytes: Int) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// Whether no more messages may be sent until some are acknowledged.
    var isFull: Bool { count == capacity || (maxBytes != 0 && bytes >= maxBytes) }

    /// Records a message whose last entry is `index`.
    mutating func add(_ index: LogIndex, bytes size: Int) {
        if count == capacity { return }  // callers check isFull first
        if ring.isEmpty { ring = Array(repeating: (LogIndex.zero, 0), count: capacity) }
        let slot = (start + count) % capacity
        ring[slot] = (index, size)
        count += 1
        bytes += size
    }

    /// Frees every message whose last index is at or below `index` (they were acknowledged).
    mutating func freeLE(_ index: LogIndex) {
        while count > 0 && ring[start].index <= index {
            bytes -= ring[start].bytes
            start = (start + 1) % capacity
            count -= 1
        }
        if count == 0 { start = 0 }
    }

    /// Frees the oldest message (a heartbeat answer shows the follower is alive).
    mutating func freeFirstOne() {
        guard count > 0 else { return }
        bytes -= ring[start].bytes
        start = (start + 1) % capacity
        count -= 1
        if count == 0 { start = 0 }
    }

    mutating func reset() {
        start = 0
        count = 0
        bytes = 0
    }
}
