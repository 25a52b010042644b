#!/bin/sh
# Server CPU per acknowledged put, plain vs inside a client session
# (`rafter bench put --session`), against a running local cluster
# (scripts/cluster.sh). Alternates the two workloads ROUNDS times and
# prints, per run, ops/s, p99 and the members' user+system CPU (from
# /proc/PID/stat) per put.
# Usage: sh benchmarks/sessions/cpu-per-put.sh [ROUNDS] [DURATION]
set -eu
rounds=${1:-3}
duration=${2:-8s}
bin=${RAFTER_BIN:-target/release/rafter}
endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
pids=$(ss -ltnpH | awk '$4 ~ /:(2379|22379|32379)$/' | sed -E 's/.*pid=([0-9]+).*/\1/' | sort -u | tr '\n' ' ')
[ -n "$pids" ] || { echo "no cluster on 2379/22379/32379 (start scripts/cluster.sh)" >&2; exit 1; }
echo "members: $pids"
hz=$(getconf CLK_TCK)
cpu_ticks() {
    total=0
    for p in $pids; do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat")
        total=$((total + t))
    done
    echo "$total"
}
echo "workload ops ops_per_s p99_ms server_cpu_us_per_put"
i=0
while [ "$i" -lt "$rounds" ]; do
    for flag in "" "--session"; do
        before=$(cpu_ticks)
        json=$("$bin" bench put --endpoints "$endpoints" --conns 8 --clients 64 \
            --duration "$duration" --output json $flag 2>/dev/null | tail -1)
        after=$(cpu_ticks)
        echo "$json" | python3 -c "
import json, sys
d = json.load(sys.stdin)
cpu_us = ($after - $before) * 1e6 / $hz
print(d['settings']['workload'], d['ops'], d['throughput_ops_per_s'],
      round(d['latency']['p99_us'] / 1000, 1), round(cpu_us / d['ops'], 1))
"
    done
    i=$((i + 1))
done
