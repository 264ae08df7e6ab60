#!/usr/bin/env bash
# The side-by-side benchmark of issue 11: our kvstore beside etcd 3.4 (gRPC and JSON gateway) and
# etcd's raftexample, and our RaftNode beside hashicorp/raft at library level, all in one run on
# this machine. See Benchmarks/peers/README.md for what each program is and what the numbers mean.
#
#   Benchmarks/peers/run.sh                 # the full run: 10 s points, 3 repeats, 1/16/64/256
#   Benchmarks/peers/run.sh --quick         # a smoke run: 2 s points, 1 repeat
#   Benchmarks/peers/run.sh --help
#
# Not part of CI. It installs what it lacks with apt-get (Debian's etcd-server, golang-go,
# golang-etcd-server-dev, golang-github-hashicorp-raft-dev, golang-github-hashicorp-raft-boltdb-dev,
# wrk), builds the Go programs offline from Debian's Go sources, builds kvstore and raft-node-bench
# in release mode, then starts each cluster (three members on 127.0.0.1, fsync on, data in a
# temporary directory), loads it, and stops it by pid. Every step has a time limit.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

duration=10
repeats=3
warmup=2
levels="1,16,64,256"
only="kvstore,etcd,raftexample,library"
out=""
quick=false
install=true
busy_limit=20
idle_wait=10

usage() {
    cat <<EOF
usage: $0 [--quick] [--duration S] [--repeats N] [--levels LIST] [--only LIST] [--out FILE]
          [--no-install] [--busy-limit PCT] [--idle-wait S]

  --quick          smoke run: 2 s points, 1 repeat, 1 s warm-up, 3 s idle wait (report to /tmp)
  --duration S     measured seconds per point (default $duration)
  --repeats N      repeats per point; the report gives the median and the range (default $repeats)
  --levels LIST    connections (or proposers), comma separated (default $levels)
  --only LIST      which groups to run: kvstore, etcd, raftexample, library (default all)
  --out FILE       where the Markdown report goes (default Benchmarks/peers/results-latest.md,
                   /tmp/peers-results-quick.md with --quick)
  --no-install     do not run apt-get; a missing tool skips what needs it
  --busy-limit P   the idle check before each point warns above P% CPU busy (default $busy_limit)
  --idle-wait S    how long the idle check waits for the machine to calm down (default $idle_wait)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=true; duration=2; repeats=1; warmup=1; idle_wait=3 ;;
    --duration) duration=${2:?}; shift ;;
    --repeats) repeats=${2:?}; shift ;;
    --levels) levels=${2:?}; shift ;;
    --only) only=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --no-install) install=false ;;
    --busy-limit) busy_limit=${2:?}; shift ;;
    --idle-wait) idle_wait=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
for n in "$duration" "$repeats" "$warmup" "$busy_limit" "$idle_wait"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a whole number: $n" >&2; exit 64; }
done
[ "$duration" -gt 0 ] && [ "$repeats" -gt 0 ] || { echo "--duration and --repeats must be positive" >&2; exit 64; }
[[ "$levels" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "--levels: a comma-separated list of numbers" >&2; exit 64; }
IFS=, read -r -a level_list <<<"$levels"
if [ -z "$out" ]; then
    if $quick; then out=/tmp/peers-results-quick.md; else out="$here/results-latest.md"; fi
fi
wants() { [[ ",$only," == *",$1,"* ]]; }

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
warn() { printf '[%s] WARNING: %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$notes"; }

work=$(mktemp -d /tmp/peers-bench.XXXXXX)
notes="$work/notes.txt"
raw="$work/results.txt"
: >"$notes"
: >"$raw"
started=()  # pids of every server this script started and has not stopped yet
pids=""     # the servers of the system being measured
leader=""   # its leader's number

stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid did not stop within 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    local left=()
    for pid in "${started[@]}"; do
        [[ " $* " == *" $pid "* ]] || left+=("$pid")
    done
    started=("${left[@]}")
}
cleanup() {
    [ ${#started[@]} -gt 0 ] && stop_pids "${started[@]}"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# What it needs

packages=(etcd-server golang-go golang-etcd-server-dev golang-github-hashicorp-raft-dev golang-github-hashicorp-raft-boltdb-dev wrk)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if $install; then
        say "installing ${missing[*]}"
        timeout 600 apt-get update -q >"$work/apt.log" 2>&1 || warn "apt-get update failed (see below)"
        if ! DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y -q "${missing[@]}" >>"$work/apt.log" 2>&1; then
            warn "apt-get install ${missing[*]} failed; going on with what is there"
            tail -n 5 "$work/apt.log"
        fi
    else
        warn "not installed (--no-install): ${missing[*]}"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Builds: the Go programs offline (GOPATH mode, Debian's sources), ours in release mode

bin="$work/bin"
mkdir -p "$bin"
gopath="$here/go:/usr/share/gocode"
gobuild() {  # gobuild NAME IMPORT-PATH
    if ! command -v go >/dev/null; then
        warn "go is missing: cannot build $1"
        return 1
    fi
    local log="$work/go-$1.log"
    if GO111MODULE=off GOPATH="$gopath" GOFLAGS= nice -n 19 timeout 900 go build -o "$bin/$1" "$2" >"$log" 2>&1; then
        return 0
    fi
    warn "cannot build $1 ($2) from /usr/share/gocode:"
    tail -n 10 "$log" | tee -a "$notes"
    return 1
}
raftexample_pkg=go.etcd.io/etcd/contrib/raftexample
if [ ! -d "/usr/share/gocode/src/$raftexample_pkg" ]; then
    found=$(find /usr/share/gocode/src -type d -name raftexample 2>/dev/null | head -n 1)
    [ -n "$found" ] && raftexample_pkg=${found#/usr/share/gocode/src/}
fi
say "building the Go programs (GO111MODULE=off GOPATH=$gopath)"
have_report=false; gobuild report peerbench/report && have_report=true
have_etcdload=false; wants etcd && gobuild etcdload peerbench/etcdload && have_etcdload=true
have_rx=false; wants raftexample && gobuild raftexample "$raftexample_pkg" && gobuild rxload peerbench/rxload && have_rx=true
have_hc=false; wants library && gobuild hcbench peerbench/hcbench && have_hc=true
$have_report || { echo "cannot build the report program; stopping" >&2; exit 1; }

swiftbuild() {  # swiftbuild PACKAGE-PATH PRODUCT: prints the binary's path
    local log="$work/swift-$2.log"
    if ! (cd "$root" && nice -n 19 timeout 3600 swift build -c release --package-path "$1" --product "$2") >"$log" 2>&1; then
        warn "swift build of $2 failed:"
        tail -n 20 "$log" >&2
        return 1
    fi
    grep -i "warning:" "$log" >&2 || true
    echo "$(cd "$root" && swift build -c release --package-path "$1" --show-bin-path)/$2"
}
kvstore_bin=""; rnb_bin=""
if wants kvstore; then
    say "building kvstore (release)"
    kvstore_bin=$(swiftbuild Examples/KVStore kvstore) || kvstore_bin=""
fi
if wants library; then
    say "building raft-node-bench (release)"
    rnb_bin=$(swiftbuild Benchmarks raft-node-bench) || rnb_bin=""
fi
has_wrk=false; command -v wrk >/dev/null && has_wrk=true
$has_wrk || warn "wrk is missing: the HTTP loads are skipped"
lua="$here/wrk/peers.lua"

# ---------------------------------------------------------------------------------------------
# Measuring

clk_tck=$(getconf CLK_TCK)

cpu_ticks() {  # total utime + stime of the given pids, in clock ticks
    local total=0 pid stat
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }  # the fields after the command name (which may hold spaces)
        read -r -a f <<<"$stat"
        total=$((total + f[11] + f[12]))  # fields 14 and 15 of /proc/PID/stat
    done
    echo "$total"
}

cpu_busy_percent() {  # the whole machine's CPU busy percentage over one second
    local a b
    read -r -a a < <(grep '^cpu ' /proc/stat)
    sleep 1
    read -r -a b < <(grep '^cpu ' /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    [ "$total" -gt 0 ] || { echo 0; return; }
    echo $(( 100 * (total - idle) / total ))
}

busiest() {  # the three processes with the most CPU over half a second (top's second sample)
    top -b -n 2 -d 0.5 -w 200 2>/dev/null | awk '/^top -/ { n++ } n == 2 && $1 ~ /^[0-9]+$/ { printf "%s %s%%; ", $12, $9; if (++k == 3) exit }'
}

# Before each point: wait (up to --idle-wait) for the machine to be idle; warn when it is not.
# Sets $busy and $load1 for the point's record.
idle_check() {
    local label=$1 waited=0
    busy=$(cpu_busy_percent)
    while [ "$busy" -gt "$busy_limit" ] && [ "$waited" -lt "$idle_wait" ]; do
        sleep 1
        waited=$((waited + 2))
        busy=$(cpu_busy_percent)
    done
    load1=$(cut -d' ' -f1 /proc/loadavg)
    if [ "$busy" -gt "$busy_limit" ]; then
        warn "$label: machine busy before the point: ${busy}% CPU, load average $load1; busiest: $(busiest)"
    fi
}

# point SYSTEM LEVEL REPEAT "SERVER PIDS" COMMAND...: runs COMMAND (one load generator run)
# under a time limit, takes its RESULT line, adds the servers' CPU seconds (or, with no server
# pids, the process's own self_cpu_s), the repeat and the idle check, and records it.
point() {
    local system=$1 level=$2 repeat=$3 pids=$4
    shift 4
    idle_check "$system c=$level #$repeat"
    local before after line
    before=$(cpu_ticks $pids)
    line=$("$@" 2>"$work/last.err" | grep '^RESULT' | tail -n 1)
    after=$(cpu_ticks $pids)
    if [ -z "$line" ]; then
        warn "$system c=$level #$repeat: no result ($(tail -n 3 "$work/last.err" | tr '\n' ' '))"
        return 1
    fi
    local cpu
    if [ -n "$pids" ]; then
        cpu=$(awk -v t=$((after - before)) -v hz="$clk_tck" 'BEGIN { printf "%.3f", t / hz }')
    else
        cpu=$(sed -n 's/.* self_cpu_s=\([0-9.]*\).*/\1/p' <<<"$line")
    fi
    line=$(sed "s/ system=[^ ]*/ system=$system/" <<<"$line")
    echo "$line repeat=$repeat cpu_s=$cpu busy=$busy load1=$load1" >>"$raw"
    say "$(sed 's/^RESULT //' <<<"$line") cpu_s=$cpu busy=${busy}%"
}

# series SYSTEM "SERVER PIDS" COMMAND-TEMPLATE...: for each level, one unrecorded warm-up run
# (servers only: the library-level programs warm up inside), then the repeats. In the template,
# {C} is the level, {T} wrk's thread count (2, or 1 for one connection) and {D} the duration in
# seconds.
series() {
    local system=$1 pids=$2
    shift 2
    local level repeat
    for level in "${level_list[@]}"; do
        [ -n "$pids" ] && run_load "$level" "$warmup" "$@" >/dev/null 2>&1
        for repeat in $(seq 1 "$repeats"); do
            point "$system" "$level" "$repeat" "$pids" run_load "$level" "$duration" "$@"
        done
    done
}
run_load() {  # run_load LEVEL SECONDS TEMPLATE...: the template filled in, run under a time limit
    local level=$1 seconds=$2 args=() a threads=2
    shift 2
    [ "$level" -lt 2 ] && threads=1
    for a in "$@"; do
        a=${a//\{C\}/$level}
        a=${a//\{T\}/$threads}
        args+=("${a//\{D\}/$seconds}")
    done
    timeout $((seconds + 120)) "${args[@]}"
}
# wrk's part of a template; then URL -- SYSTEM API OP {C} (see wrk/peers.lua).
wrk_load=(wrk -t{T} -c{C} -d{D}s --timeout 10s -s "$lua")

# launch NAME N COMMAND...: starts server N of NAME in the background (output in
# $work/NAME-N.out) and adds its pid to $pids and to the servers to stop at exit.
launch() {
    local name=$1 n=$2
    shift 2
    "$@" </dev/null >"$work/$name-$n.out" 2>&1 &
    pids="$pids $!"
    started+=("$!")
}

# find_leader NAME PROBE: calls PROBE (it prints the leader's number, or nothing) every 0.2 s for
# up to 30 s and sets $leader; when none is found it warns, shows the logs, stops $pids and fails.
find_leader() {
    local name=$1 probe=$2
    for _ in $(seq 1 150); do
        leader=$($probe)
        [ -n "$leader" ] && return 0
        sleep 0.2
    done
    warn "$name: no leader within 30 s"
    tail -n 5 "$work/$name"-*.out
    stop_pids $pids
    return 1
}

port_free() { ! ss -ltnH 2>/dev/null | awk '{print $4}' | grep -qE ":$1\$"; }
ports_free() {
    local p
    for p in "$@"; do port_free "$p" || { warn "port $p is in use; skipping this system"; return 1; }; done
}
# Fills the key space (every key written once, sequentially), so that reads find what they ask for.
fill() {  # fill URL API
    wrk -t1 -c16 -d3s --timeout 10s -s "$lua" "$1" -- fill "$2" fill 16 >"$work/fill.out" 2>&1
}

# ---------------------------------------------------------------------------------------------
# The systems

kvstore_leader() {
    local l
    l=$(curl -sf --max-time 2 http://127.0.0.1:38001/cluster | sed -n 's/.*"leader":\([0-9]*\).*/\1/p')
    [ "${l:-0}" != 0 ] && echo "$l"
}
run_kvstore() {
    [ -n "$kvstore_bin" ] && $has_wrk || { warn "kvstore skipped (no binary or no wrk)"; return; }
    ports_free 37001 37002 37003 38001 38002 38003 || return
    local peers="1=127.0.0.1:37001/127.0.0.1:38001,2=127.0.0.1:37002/127.0.0.1:38002,3=127.0.0.1:37003/127.0.0.1:38003"
    local i
    pids=""
    say "kvstore: starting three 'kvstore serve' on 127.0.0.1 (peers 37001-37003, HTTP 38001-38003)"
    for i in 1 2 3; do
        launch kvstore "$i" "$kvstore_bin" serve --id "$i" --peers "$peers" --data-dir "$work/kvstore/node$i" --log-level warning
    done
    find_leader kvstore kvstore_leader || return
    local url="http://127.0.0.1:$((38000 + leader))"
    say "kvstore: leader node $leader ($url); pids$pids"
    fill "$url" kvstore
    series kvstore-put "$pids" "${wrk_load[@]}" "$url" -- kvstore-put kvstore put {C}
    series kvstore-get "$pids" "${wrk_load[@]}" "$url" -- kvstore-get kvstore get {C}
    local now
    now=$(kvstore_leader)
    [ "$now" = "$leader" ] || warn "kvstore: the leader changed during the run ($leader -> ${now:-none})"
    stop_pids $pids
    du -sh "$work/kvstore" | awk '{print "kvstore: data " $1}'
    rm -rf "$work/kvstore"
}

etcd_leader() {  # the member whose own id is the leader its status reports
    local i status me them
    for i in 1 2 3; do
        status=$(curl -sf --max-time 2 -X POST -d '{}' "http://127.0.0.1:3237$i/v3/maintenance/status") || continue
        me=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<<"$status")
        them=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<<"$status")
        [ -n "$me" ] && [ "$me" = "$them" ] && { echo "$i"; return; }
    done
}
run_etcd() {
    command -v etcd >/dev/null || { warn "etcd skipped: no etcd binary (etcd-server)"; return; }
    ports_free 32371 32372 32373 32381 32382 32383 || return
    local cluster="n1=http://127.0.0.1:32381,n2=http://127.0.0.1:32382,n3=http://127.0.0.1:32383"
    local i
    pids=""
    say "etcd $(etcd --version | head -n 1 | awk '{print $3}'): starting three members on 127.0.0.1 (clients 32371-32373, peers 32381-32383)"
    for i in 1 2 3; do
        launch etcd "$i" etcd --name "n$i" --data-dir "$work/etcd/n$i" \
            --listen-client-urls "http://127.0.0.1:3237$i" --advertise-client-urls "http://127.0.0.1:3237$i" \
            --listen-peer-urls "http://127.0.0.1:3238$i" --initial-advertise-peer-urls "http://127.0.0.1:3238$i" \
            --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token peers-bench \
            --logger zap --log-level warn
    done
    find_leader etcd etcd_leader || return
    local url="http://127.0.0.1:3237$leader"
    say "etcd: leader member n$leader ($url); pids$pids"
    $has_wrk && fill "$url" etcd
    if $have_etcdload; then
        series etcd-grpc-put "$pids" "$bin/etcdload" -endpoints "$url" -clients {C} -duration {D}s -mode put
    else
        warn "etcd gRPC load skipped: etcdload did not build"
    fi
    $has_wrk && series etcd-json-put "$pids" "${wrk_load[@]}" "$url" -- etcd-json-put etcd put {C}
    $have_etcdload && series etcd-grpc-get "$pids" "$bin/etcdload" -endpoints "$url" -clients {C} -duration {D}s -mode get
    $has_wrk && series etcd-json-get "$pids" "${wrk_load[@]}" "$url" -- etcd-json-get etcd get {C}
    stop_pids $pids
    du -sh "$work/etcd" | awk '{print "etcd: data " $1}'
    rm -rf "$work/etcd"
}

raftexample_leader() {
    # raftexample has no status API: its raft log line "N became leader at term T" names it,
    # and it takes a PUT once it serves.
    local l
    l=$(grep -ho '[0-9]* became leader at term' "$work"/raftexample-*.out 2>/dev/null | tail -n 1 | awk '{print $1}')
    [ -n "$l" ] && curl -sf --max-time 2 -o /dev/null -X PUT -d x "http://127.0.0.1:$((39120 + l))/probe" && echo "$l"
}
run_raftexample() {
    $have_rx || { warn "raftexample skipped: it or rxload did not build"; return; }
    ports_free 39021 39022 39023 39121 39122 39123 || return
    local cluster="http://127.0.0.1:39021,http://127.0.0.1:39022,http://127.0.0.1:39023"
    local i
    pids=""
    mkdir -p "$work/raftexample"
    say "raftexample: starting three nodes on 127.0.0.1 (peers 39021-39023, HTTP 39121-39123)"
    for i in 1 2 3; do
        # raftexample keeps its WAL and snapshots in its working directory.
        launch raftexample "$i" env -C "$work/raftexample" "$bin/raftexample" --id "$i" --cluster "$cluster" --port "$((39120 + i))"
    done
    find_leader raftexample raftexample_leader || return
    local url="http://127.0.0.1:$((39120 + leader))"
    say "raftexample: leader node $leader ($url); pids$pids"
    $has_wrk && fill "$url" raftexample
    series raftexample-put-visible "$pids" "$bin/rxload" -url "$url" -clients {C} -duration {D}s
    $has_wrk && series raftexample-put "$pids" "${wrk_load[@]}" "$url" -- raftexample-put raftexample put {C}
    stop_pids $pids
    du -sh "$work/raftexample" | awk '{print "raftexample: data " $1}'
    rm -rf "$work/raftexample"
}

run_library() {
    # Both in process, one process per point, the proposers inside: CPU is the whole process's.
    if [ -n "$rnb_bin" ]; then
        say "library level: raft-node-bench over TCP (3 RaftNodes in one process, FileLogStorage, 144-byte commands)"
        series raft-node-bench-tcp "" "$rnb_bin" --transport tcp -c {C} -d {D} -w 1 -p 144 --raw-syncs 100 --dir "$work" --result-lines
    else
        warn "raft-node-bench skipped: it did not build"
    fi
    if $have_hc; then
        say "library level: hashicorp/raft + raft-boltdb (3 nodes in one process over TCP, 144-byte commands)"
        series hashicorp-raft "" "$bin/hcbench" -proposers {C} -duration {D}s -warmup 1s -payload 144 -dir "$work"
    else
        warn "hashicorp/raft skipped: hcbench did not build"
    fi
}

started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
say "peers benchmark: ${duration} s points, $repeats repeat(s), levels $levels, groups $only; work dir $work"
wants kvstore && run_kvstore
wants etcd && run_etcd
wants raftexample && run_raftexample
wants library && run_library

# ---------------------------------------------------------------------------------------------
# The report

meta="$work/meta.txt"
{
    echo "Run $started_at to $(date -u '+%H:%M UTC') on $(nproc) cores ($(uname -r)), everything on this one machine: three members of each cluster and the load generator share its cores."
    echo "Settings: ${duration} s per point, $repeats repeat(s) per point (median and range), ${warmup} s unrecorded warm-up per level, connections/proposers $levels; 16-byte keys (1000 of them), 128-byte values (144-byte commands at library level); fsync on everywhere."
    echo "Versions: etcd $(etcd --version 2>/dev/null | head -n 1 | awk '{print $3}'), $(go version 2>/dev/null | awk '{print $3}'), hashicorp/raft $(dpkg-query -W -f='${Version}' golang-github-hashicorp-raft-dev 2>/dev/null), raft-boltdb $(dpkg-query -W -f='${Version}' golang-github-hashicorp-raft-boltdb-dev 2>/dev/null), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null), swift-raft $(git -C "$root" rev-parse --short HEAD 2>/dev/null)."
    echo "Load note: the idle check before each point saw $(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^busy=/) { v = substr($i, 6) + 0; if (n == 0 || v < lo) lo = v; if (v > hi) hi = v; n++ } } END { if (n) printf "%d%% to %d%% CPU busy over %d points", lo, hi, n; else printf "no points" }' "$raw"); $(grep -c WARNING "$notes" || true) warning(s)."
    sed 's/^\[[0-9:]*\] //' "$notes"
} >"$meta"
title="Peers benchmark ($(date -u +%Y-%m-%d)$($quick && echo ', --quick smoke run'))"
{
    "$bin/report" -raw "$raw" -meta "$meta" -title "$title" -busy-limit "$busy_limit"
    echo
    echo "Every measurement of this run (servers' or, at library level, the process's CPU seconds in cpu_s):"
    echo
    echo '```'
    cat "$raw"
    echo '```'
} >"$work/report.md"
mkdir -p "$(dirname "$out")"
cp "$work/report.md" "$out"
echo
cat "$out"
echo
say "report written to $out"
