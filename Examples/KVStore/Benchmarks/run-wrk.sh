#!/usr/bin/env bash
# Measures the KVStore HTTP API with wrk (Debian's `wrk` package) against `kvstore local`:
# PUT and GET (linearizable, lease, stale) of 16-byte keys and 128-byte values at 1, 64 and
# 256 connections, on the leader. Prints one line per run: requests/s, p50, p99.
#
#   Examples/KVStore/Benchmarks/run-wrk.sh [DURATION] [CONFIGURATION]
#
# DURATION is wrk's (default 10s); CONFIGURATION is release (default) or debug. The cluster
# runs on 127.0.0.1 ports 27001-27003 (peers) and 28001-28003 (HTTP), data in a temporary
# directory removed at the end. All three nodes and wrk share this machine's cores, so the
# numbers are of one machine, not of a real three-machine cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
configuration=${2:-release}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

if ! out=$(swift build -c "$configuration" --product kvstore 2>&1); then echo "$out" >&2; exit 1; fi
bin="$(swift build -c "$configuration" --show-bin-path)/kvstore"
data=$(mktemp -d)
"$bin" local --dir "$data" --raft-port 27001 --http-port 28001 --log-level warning </dev/null >"$data/local.out" 2>"$data/local.err" &
local_pid=$!
cleanup() {
    kill -INT "$local_pid" 2>/dev/null || true
    wait "$local_pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

leader=""
for _ in $(seq 1 100); do
    leader=$(curl -sf http://127.0.0.1:28001/cluster | sed -n 's/.*"leader":\([0-9]*\).*/\1/p' || true)
    [ -n "$leader" ] && break
    sleep 0.2
done
[ -n "$leader" ] || { echo "no leader after 20 s" >&2; cat "$data/local.err" >&2; exit 1; }
url="http://127.0.0.1:$((28000 + leader))"
echo "kvstore local ($configuration build), leader node $leader at $url; wrk runs of $duration"

run() {
    local connections=$1; shift
    local threads=$(( connections < 2 ? 1 : 2 ))
    printf '%-22s c=%-4s ' "$*" "$connections"
    wrk -t"$threads" -c"$connections" -d"$duration" -s Benchmarks/kv.lua "$url" -- "$@" | tail -n 1
}
for c in 1 64 256; do run "$c" put; done
for c in 1 64 256; do run "$c" get; done
for c in 1 64 256; do run "$c" get lease; done
for c in 1 64 256; do run "$c" get stale; done
