import Raft
import Testing

func e(_ i: UInt64, _ t: UInt64) -> LogEntry { LogEntry(term: Term(rawValue: t), index: LogIndex(rawValue: i), data: [UInt8(i & 0xFF)]) }

@Suite("Applied-index rules")
struct AppliedIndexGuardTests {
    /// Snapshot index below, equal to and above the state machine's applied index, for a state
    /// machine starting empty (in memory) and one reopening at a durable index (on disk).
    static let snapshotCases: [(stateMachineApplied: UInt64, snapshot: UInt64, expected: AppliedIndexGuard.SnapshotDecision)] = [
        (0, 10, .load),  // in memory, fresh: load
        (100, 90, .ignore),  // on disk, snapshot behind: ignore (no "moving applied index backwards")
        (100, 100, .adoptMetadataOnly),  // on disk, equal: adopt metadata, do not reload ("N, N")
        (100, 120, .load),  // on disk, behind the snapshot: load
    ]

    @Test(arguments: snapshotCases)
    func snapshotAtStart(_ c: (stateMachineApplied: UInt64, snapshot: UInt64, expected: AppliedIndexGuard.SnapshotDecision)) throws {
        // init
        let g = try AppliedIndexGuard.opening(
            stateMachineApplied: LogIndex(rawValue: c.stateMachineApplied), lastLogIndex: 200)
        // act / check
        #expect(g.decide(snapshotAt: LogIndex(rawValue: c.snapshot)) == c.expected)
    }

    @Test(arguments: snapshotCases)
    func snapshotAtRunTime(_ c: (stateMachineApplied: UInt64, snapshot: UInt64, expected: AppliedIndexGuard.SnapshotDecision)) throws {
        // init: reach the applied index by applying entries, as a running node does
        var g = AppliedIndexGuard()
        if c.stateMachineApplied > 0 {
            let batch = (1...c.stateMachineApplied).map { e($0, 1) }
            let admitted = try g.admit(batch)
            #expect(admitted.count == batch.count)
            g.applied(through: batch.last!)
        }
        // act
        let decision = g.decide(snapshotAt: LogIndex(rawValue: c.snapshot))
        if decision != .ignore {
            g.snapshotInstalled(SnapshotMetadata(index: LogIndex(rawValue: c.snapshot), term: 2, confState: ConfState(voters: [1])))
        }
        // check
        #expect(decision == c.expected)
        #expect(g.applied == LogIndex(rawValue: max(c.stateMachineApplied, c.snapshot)))
    }

    /// After a restart, committed entries the state machine already holds are skipped.
    @Test func entriesAtOrBelowAppliedAreSkipped() throws {
        var g = try AppliedIndexGuard.opening(stateMachineApplied: 5, lastLogIndex: 10)
        let fresh = try g.admit((3...8).map { e($0, 1) })
        #expect(fresh.map(\.index) == [6, 7, 8])
        g.applied(through: fresh.last!)
        #expect(try g.admit((1...8).map { e($0, 1) }).isEmpty)
    }

    @Test func gapIsRefusedWithBothIndexes() {
        var g = AppliedIndexGuard(applied: 5)
        do {
            _ = try g.admit([e(8, 1)])
            Issue.record("a gap was accepted")
        } catch {
            #expect(error.message.contains("8") && error.message.contains("5"))
            #expect(error.code == .storage, "the log is at fault")
        }
    }

    @Test func termGoingBackwardsIsRefused() {
        var g = AppliedIndexGuard(applied: 5, term: 3)
        #expect(throws: RaftError.self) { _ = try g.admit([e(6, 2)]) }
        var h = AppliedIndexGuard()
        #expect(throws: RaftError.self) { _ = try h.admit([e(1, 2), e(2, 1)]) }
    }

    @Test func stateMachineAheadOfTheLogIsRefused() {
        do {
            _ = try AppliedIndexGuard.opening(stateMachineApplied: 12, lastLogIndex: 10)
            Issue.record("a state machine ahead of the log was accepted")
        } catch {
            #expect(error.message.contains("12") && error.message.contains("10"))
            #expect(error.code == .stateMachine)
        }
    }

    @Test func reportedIndexGoingBackwardsIsATypedError() {
        let g = AppliedIndexGuard(applied: 50)
        do {
            try g.verify(reported: 40, after: "apply")
            Issue.record("an applied index going backwards was accepted")
        } catch {
            #expect(error.message.contains("40") && error.message.contains("50") && error.message.contains("after apply"))
            #expect(error.code == .stateMachine)
        }
        #expect(throws: RaftError.self) { try g.verify(reported: 60, after: "apply") }
        do { try g.verify(reported: 60, after: "apply") } catch { #expect(error.code == .stateMachine) }
        #expect(throws: Never.self) { try g.verify(reported: 50, after: "apply") }
    }

    /// The field failure: an on-disk state machine at N, restarted twice, offered the leader's
    /// snapshot at N and then the committed entries up to N again. Nothing is re-applied,
    /// nothing is reloaded, nothing throws.
    @Test func restartedTwiceAndOfferedSnapshotAtN() throws {
        let n: LogIndex = 300
        for _ in 0..<2 {
            var g = try AppliedIndexGuard.opening(stateMachineApplied: n, lastLogIndex: 310)
            #expect(g.decide(snapshotAt: n) == .adoptMetadataOnly)
            g.snapshotInstalled(SnapshotMetadata(index: n, term: 4, confState: ConfState(voters: [1, 2, 3])))
            #expect(try g.admit((251...300).map { e($0, 4) }).isEmpty)
            let fresh = try g.admit((301...310).map { e($0, 4) })
            #expect(fresh.first?.index == 301)
        }
    }
}
