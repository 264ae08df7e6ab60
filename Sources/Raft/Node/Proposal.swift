import Synchronization

extension RaftNode {
    /// A proposal on its way to the run loop: the caller's commands, its token (for
    /// cancellation) and how to answer it.
    struct Proposal: Sendable {
        var commands: [[UInt8]]
        var token: UInt64
        var reply: Reply
    }

    /// How a proposal is answered: one result, or one per command of a batch.
    enum Reply: Sendable {
        case one(CheckedContinuation<SM.Result, any Error>)
        case batch(CheckedContinuation<[SM.Result], any Error>)

        /// Fails the whole proposal.
        func fail(_ error: any Error) {
            switch self {
            case .one(let c): c.resume(throwing: error)
            case .batch(let c): c.resume(throwing: error)
            }
        }

        /// One answer per command, for the loop's pending entries.
        func answers(count: Int) -> [ProposalAnswer<SM.Result>] {
            switch self {
            case .one(let c):
                return [.one(c)]
            case .batch(let c):
                let collector = BatchAnswer<SM.Result>(count: count, continuation: c)
                return (0..<count).map { .batch(collector, position: $0) }
            }
        }
    }
}

/// How the loop answers one pending entry: its caller directly, or its share of a batch.
enum ProposalAnswer<Result: Sendable> {
    case one(CheckedContinuation<Result, any Error>)
    case batch(BatchAnswer<Result>, position: Int)

    func resume(returning result: Result) {
        switch self {
        case .one(let c): c.resume(returning: result)
        case .batch(let b, let position): b.record(result, at: position)
        }
    }

    func resume(throwing error: any Error) {
        switch self {
        case .one(let c): c.resume(throwing: error)
        case .batch(let b, _): b.fail(error)
        }
    }
}

/// The results of a batch proposal, collected entry by entry on the run loop; the caller is
/// answered once every entry is applied, or at the first failure (the other entries may still
/// be committed: as for a single proposal, a failure means the outcome is unknown).
///
/// Confined to the run loop (not `Sendable`).
final class BatchAnswer<Result: Sendable> {
    var results: [Result?]
    var remaining: Int
    var continuation: CheckedContinuation<[Result], any Error>?

    init(count: Int, continuation: CheckedContinuation<[Result], any Error>) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.continuation = continuation
    }

    func record(_ result: Result, at position: Int) {
        guard continuation != nil, results[position] == nil else { return }
        results[position] = result
        remaining -= 1
        if remaining == 0, let c = continuation {
            continuation = nil
            c.resume(returning: results.map { $0! })
        }
    }

    func fail(_ error: any Error) {
        guard let c = continuation else { return }
        continuation = nil
        c.resume(throwing: error)
    }
}

/// Orders a proposal and its cancellation: the cancellation is posted only once the proposal
/// is, so the run loop never sees a cancellation for a proposal it has not received (and need
/// not remember cancellations for proposals that may never come). A task cancelled before its
/// proposal is posted is answered at once and posts nothing.
final class ProposalTicket: Sendable {
    struct State {
        var posted = false
        var cancelled = false
    }

    let state = Mutex(State())
}
