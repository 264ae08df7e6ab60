import Raft
@testable import RaftTestKit
import Testing

/// Review of issue 9's simulated clients: what a simulated get records must be what a real
/// node would answer, or the linearizability check tests a different system.
@Suite("SimKVClients review")
struct SimKVClientsReviewTests {
    /// A ``RaftNode`` serves a read as soon as its read index is confirmed and applied, with the
    /// state it has then (NodeLoop `confirmReads` runs before the batch's entries are applied).
    /// The simulated client instead takes the value at whatever the node has applied by the end
    /// of the round, so a write that committed after the read was answered shows in it. A read
    /// answered from a stale index (a deposed leader, a follower using its own commit index)
    /// is then recorded with a fresh value whenever the node catches up within the same round,
    /// and the checker cannot see the violation.
    /// Clients that start no operation of their own (only those a test makes).
    static func idleClients(on cluster: SimCluster) -> SimKVClients {
        var options = SimKVClients.Options()
        options.operationRate = 0
        options.staleReads = false
        return SimKVClients(cluster: cluster, seed: 7, options: options)
    }

    /// Issues a quorum get of `key` on `node` as client 0 and delivers everything; returns
    /// whether its read index was confirmed (the get is then waiting for its node to apply it,
    /// or already recorded).
    static func confirmedGet(_ workload: SimKVClients, _ cluster: SimCluster, key: String, on node: NodeID) throws -> Bool {
        let context: [UInt8] = [0xAB, 0xCD]
        workload.clients[0] = .read(
            key: key, node: node, incarnation: workload.incarnation(node), context: context, readIndex: nil,
            call: workload.tick(), deadline: cluster.round + 60)
        _ = try cluster.withCore(node) { (c: inout RaftCore) throws(RaftError) in try c.readIndex(context: context, confirmation: .quorum) }
        cluster.deliverAll()
        if case .read(_, _, _, _, _?, _, _)? = workload.clients[0] { return true }
        return firstGet(workload) != nil
    }

    static func firstGet(_ workload: SimKVClients) -> LinearizabilityHistory<SimKVClients.Model.Input, SimKVClients.Model.Output>.Operation? {
        workload.history.operations.first { if case .get = $0.input { true } else { false } }
    }

    @Test func aGetRecordsTheValueTheNodeServedWhenItsReadIndexWasConfirmed() throws {
        let cluster = try SimCluster(nodes: 3, seed: 7)
        let workload = Self.idleClients(on: cluster)
        #expect(cluster.campaign(1))
        cluster.deliverAll()
        let leader = try #require(cluster.leader)
        _ = try cluster.propose(leader, [SimKVClients.encode(.put(key: "k0", value: "v1"))])
        cluster.deliverAll()

        // The round is answered: the read index is confirmed, and the leader has applied it (a
        // real node answers "v1" now).
        try #require(try Self.confirmedGet(workload, cluster, key: "k0", on: leader))

        // Later in the same round a new write commits and is applied, before the clients look.
        _ = try cluster.propose(leader, [SimKVClients.encode(.put(key: "k0", value: "v2"))])
        cluster.deliverAll()
        workload.runRound()

        #expect(Self.firstGet(workload)?.output == SimKVClients.Model.Output.value("v1"), "the get was recorded with the state after the read was served")
    }

    /// ``SimKVClients/init(cluster:seed:options:)`` is public and says only that it attaches to
    /// the cluster. Attached after anything committed, it never learns the entries before
    /// (`learnCommitted` extends its log only from index 1 on), so every get is recorded with
    /// the value of an empty store and every write stays pending until it is recorded as
    /// unknown: a history that checks out whatever the cluster does. It must either learn the
    /// state or report that it cannot; it does neither.
    @Test func clientsAttachedAfterACommitRecordNoGetFromAnIncompleteLog() throws {
        let cluster = try SimCluster(nodes: 3, seed: 7)
        #expect(cluster.campaign(1))
        cluster.deliverAll()
        let leader = try #require(cluster.leader)
        let workload = Self.idleClients(on: cluster)
        _ = try cluster.propose(leader, [SimKVClients.encode(.put(key: "k0", value: "v1"))])
        cluster.deliverAll()
        try #require(try Self.confirmedGet(workload, cluster, key: "k0", on: leader))
        workload.runRound()
        let get = try #require(Self.firstGet(workload), "the get was not recorded")
        #expect(
            get.output == SimKVClients.Model.Output.value("v1") || !workload.violations.isEmpty,
            "the get was recorded as \(String(describing: get.output)) from a log the clients never saw, silently")
    }
}
