import Synchronization

/// The run loop's queue: any task posts, the loop takes everything queued at once (so events
/// that arrive while it persists one batch form the next batch: group commit).
final class Inbox<Event: Sendable>: Sendable {
    struct State {
        var items: [Event] = []
        var waiter: CheckedContinuation<[Event], Never>?
        var closed = false
    }

    let state = Mutex(State())

    /// Queues an event; `false` once the inbox is closed.
    @discardableResult
    func post(_ e: Event) -> Bool {
        let (accepted, waiter) = state.withLock { s -> (Bool, CheckedContinuation<[Event], Never>?) in
            if s.closed { return (false, nil) }
            if let w = s.waiter {
                s.waiter = nil
                return (true, w)
            }
            s.items.append(e)
            return (true, nil)
        }
        waiter?.resume(returning: [e])
        return accepted
    }

    /// Everything queued, waiting until there is something.
    func next() async -> [Event] {
        await withCheckedContinuation { (c: CheckedContinuation<[Event], Never>) in
            let ready = state.withLock { s -> [Event]? in
                if !s.items.isEmpty {
                    let items = s.items
                    s.items = []
                    return items
                }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// Everything queued now, without waiting (possibly nothing).
    func takeNow() -> [Event] {
        state.withLock { s in
            let items = s.items
            s.items = []
            return items
        }
    }

    /// Refuses further events; returns those still queued.
    func close() -> [Event] {
        state.withLock { s in
            s.closed = true
            let items = s.items
            s.items = []
            return items
        }
    }
}
