#!/usr/bin/env bash
# Where a write's CPU goes, thread by thread: starts a fresh 3-member
# Rafter cluster on loopback from --binary, runs one `rafter bench`
# workload against it for --duration, and prints the CPU time (utime +
# stime from /proc/PID/task/TID/stat) each kind of thread of all three
# members spent per successful operation (rafter-raft, rafter-apply,
# rafter-io, ...), with the throughput. For A/B comparisons of two builds:
# run it alternately with each --binary (benchmarks/NOTES.md, changes 5
# and 6), since this shared machine's speed drifts within minutes.
#
# Usage: scripts/bench-threads.sh [--binary target/release/rafter]
#            [--workload put|txn-cas] [--duration 10s] [--label NAME]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="$repo/target/release/rafter"
workload=put
duration=10s
label=""
while [ $# -gt 0 ]; do
    case "$1" in
    --binary) binary=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[ -x "$binary" ] || { echo "no rafter binary at $binary (cargo build --release -p rafter)" >&2; exit 2; }
command -v etcdctl >/dev/null || { echo "etcdctl is missing: sh scripts/install-test-deps.sh" >&2; exit 2; }
case "$workload" in
put) args=(put) ;;
txn-cas) args=(txn-cas --cas-on mod) ;;
*) echo "unknown workload $workload (put or txn-cas)" >&2; exit 2 ;;
esac

work="$(mktemp -d /tmp/rafter-bench-threads.XXXXXX)"
pids=()
cleanup() {
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
client_ports=() peer_ports=()
for i in 0 1 2; do
    client_ports+=("$(free_port)")
    peer_ports+=("$(free_port)")
done
cluster="m0=http://127.0.0.1:${peer_ports[0]},m1=http://127.0.0.1:${peer_ports[1]},m2=http://127.0.0.1:${peer_ports[2]}"
endpoints="127.0.0.1:${client_ports[0]},127.0.0.1:${client_ports[1]},127.0.0.1:${client_ports[2]}"
for i in 0 1 2; do
    c=${client_ports[$i]} p=${peer_ports[$i]}
    "$binary" serve --name "m$i" --data-dir "$work/m$i" \
        --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench-threads \
        --heartbeat-interval 100 --election-timeout 1000 --snapshot-count 100000 \
        >"$work/m$i.log" 2>&1 &
    pids+=("$!")
done
healthy=no
for _ in $(seq 300); do
    if ETCDCTL_API=3 etcdctl --endpoints "$endpoints" --command-timeout 2s endpoint health >/dev/null 2>&1; then
        healthy=yes
        break
    fi
    sleep 0.2
done
[ "$healthy" = yes ] || { echo "the cluster did not become healthy; logs in $work" >&2; tail -n 5 "$work"/m*.log >&2; exit 1; }

# Prints "thread-name ticks" summed over the members' threads.
thread_ticks() {
    local pid task
    for pid in "${pids[@]}"; do
        for task in /proc/"$pid"/task/*; do
            echo "$(cat "$task/comm") $(awk '{ print $14 + $15 }' "$task/stat" 2>/dev/null || echo 0)"
        done
    done | awk '{ t[$1] += $2 } END { for (k in t) print k, t[k] }'
}

echo "== $workload for $duration against $binary" >&2
thread_ticks >"$work/before"
"$binary" bench "${args[@]}" --duration "$duration" --conns 6 --key-size 8 --val-size 256 \
    --key-space 10000 --clients 64 --endpoints "$endpoints" --output json | tail -n 1 >"$work/run.json"
thread_ticks >"$work/after"
python3 - "$work/before" "$work/after" "$work/run.json" "$(getconf CLK_TCK)" "${label:-$workload}" <<'PY'
import json, sys
before = dict(line.split() for line in open(sys.argv[1]))
after = dict(line.split() for line in open(sys.argv[2]))
run = json.load(open(sys.argv[3]))
ticks_per_s, label = int(sys.argv[4]), sys.argv[5]
ops = run["ops"]
if not ops:
    sys.exit("the run completed no operation")
per_op = {name: (int(after[name]) - int(before.get(name, 0))) * 1e6 / ticks_per_s / ops for name in after}
shown = sorted(((n, v) for n, v in per_op.items() if v >= 0.5), key=lambda x: -x[1])
print(f"{label}: {run['throughput_ops_per_s']:.0f} ops/s, CPU µs per op by thread (all members): "
      + ", ".join(f"{n} {v:.1f}" for n, v in shown) + f", all threads {sum(per_op.values()):.1f}")
PY
