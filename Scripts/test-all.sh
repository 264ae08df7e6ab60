#!/usr/bin/env bash
# Runs every test of the repository: the library's (the root package) and the KVStore
# example's (Examples/KVStore, a package of its own). This is the README's test command, and
# .ci/run calls exactly this script.
#
# The example's tests start nodes on 127.0.0.1 and need curl (its quick-start test runs the
# README's curl calls), chromium (its status page test renders the page headless) and
# libsqlite3-dev (GRDB links the system's SQLite); .ci/run installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Library tests (swift test)"
swift test

echo "== Examples/KVStore tests (swift test --package-path Examples/KVStore)"
swift test --package-path Examples/KVStore --skip KVFaultTests

# On their own, after the others: three kvstore processes under faults, 6 runs of 30 s
# (KVSTORE_FAULT_RUNS and KVSTORE_FAULT_SECONDS change that). Run beside the other suites they
# would load the machine and slow both. As root with iproute2 each node gets a network
# namespace of its own, for real partitions; .ci/run installs iproute2 when missing.
echo "== Examples/KVStore fault runs (swift test --package-path Examples/KVStore --filter KVFaultTests)"
swift test --package-path Examples/KVStore --filter KVFaultTests 2>&1 | tee /tmp/swift-raft-fault-tests.log
# A filter that matches nothing passes with no test run: make sure the runs ran.
if ! grep -q "Test runsUnderFaultsStayLinearizableAndConverge() passed" /tmp/swift-raft-fault-tests.log; then
    echo "error: the fault runs (KVFaultTests) did not run and pass" >&2
    exit 1
fi
