import Raft

/// Your ``Raft/StateMachine`` as a ``SimCluster`` runs it: how to make an instance, how to make
/// valid commands, and how to compare states and results.
///
/// Every simulated node runs its own instance beside the cluster's hash machine
/// (``SimStateMachine``, which the ``SafetyChecker`` still uses to follow the logs). Commands
/// come from `commands`; results are compared between every two nodes that applied the same
/// command, and states between every two nodes that stood at the same index at the end of a
/// batch of applies or right after a snapshot recovery (see ``SimCluster/check(_:seeds:options:)``).
///
/// The simulation treats the state machine as an in-memory one: a node that restarts gets a
/// new instance from `make`, which must hold an empty state, and rebuilds it from its latest
/// snapshot and the log, as ``Raft/RaftNode`` rebuilds a ``Raft/StateMachine`` whose
/// ``Raft/StateMachine/openDurableState()`` returns `nil`. A durable applied index
/// (``Raft/OnDiskStateMachine``) is checked by ``StateMachineChecks`` instead.
public struct SimMachineUnderTest<SM: StateMachine> {
    /// Makes a new instance holding an empty state. Called when a node starts, restarts after a
    /// crash or is wiped.
    public typealias Factory = () throws -> SM
    /// Makes one valid command from a seeded generator. Commands need not be distinct.
    public typealias CommandGenerator = (inout SeededGenerator) -> [UInt8]

    let make: Factory
    let commands: CommandGenerator
    let resultsMatch: (SM.Result, SM.Result) -> Bool
    /// A digest of an instance's state, equal exactly when two states are equal; `nil` uses
    /// the bytes its snapshot saves (``Raft/StateMachine/prepareSnapshot()`` then
    /// ``Raft/StateMachine/saveSnapshot(_:to:)``), which then must write equal states as
    /// equal bytes (a `Dictionary` sorted, not in its iteration order). Called after a batch
    /// of applies or a snapshot recovery, after ``Raft/StateMachine/sync()``, and on a fresh
    /// instance recovered from each snapshot as it is saved. The same closure as
    /// ``StateMachineChecks/describeState`` does.
    public var describeState: ((SM) throws -> String)?

    /// Describes a state machine whose results are compared with `resultsMatch`.
    public init(
        make: @escaping Factory, commands: @escaping CommandGenerator, describeState: ((SM) throws -> String)? = nil,
        resultsMatch: @escaping (SM.Result, SM.Result) -> Bool
    ) {
        self.make = make
        self.commands = commands
        self.describeState = describeState
        self.resultsMatch = resultsMatch
    }
}

extension SimMachineUnderTest where SM.Result: Equatable {
    /// Describes a state machine whose results are compared with `==`.
    public init(make: @escaping Factory, commands: @escaping CommandGenerator, describeState: ((SM) throws -> String)? = nil) {
        self.init(make: make, commands: commands, describeState: describeState, resultsMatch: { $0 == $1 })
    }
}
