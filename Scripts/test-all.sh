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
swift test --package-path Examples/KVStore
