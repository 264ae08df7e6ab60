import Dispatch

/// Runs the jobs of one node's run loop on a serial dispatch queue of its own, off Swift's
/// cooperative pool. The loop may therefore block on the disk (write and `fdatasync` a batch
/// inline) without holding up other tasks, and a sync costs no hop to another thread and back:
/// on a follower the acknowledgement leaves as soon as the sync returns.
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    // The queue is thread-safe; the class holds nothing else.
    let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
        queue.setSpecific(key: Self.key, value: ())
    }

    static let key = DispatchSpecificKey<Void>()

    /// Whether the caller runs on some node's run loop (tests check work stays off it).
    static var isCurrent: Bool { DispatchQueue.getSpecific(key: key) != nil }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
