#!/bin/sh
# Server CPU per acknowledged put, plain vs inside a client session
# (`rafter bench put --session`), against a running local cluster
# (scripts/cluster.sh). Runs the two workloads ROUNDS times in ABBA order
# (plain, session, session, plain: the store grows over the runs, and the
# order cancels that drift) and prints, per run, ops/s, p99 and the
# members' user+system CPU (from /proc/PID/stat) per put, then the medians.
# Usage: sh benchmarks/sessions/cpu-per-put.sh [ROUNDS] [DURATION] [RATE]
# RATE (ops/s) fixes the offered load, so both workloads batch alike and
# CPU per put compares the work, not the batching (default: 4000).
set -eu
rounds=${1:-3}
duration=${2:-8s}
rate=${3:-4000}
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
    if [ $((i % 2)) -eq 0 ]; then order="plain session"; else order="session plain"; fi
    for kind in $order; do
        flag=""
        [ "$kind" = session ] && flag="--session"
        before=$(cpu_ticks)
        json=$("$bin" bench put --endpoints "$endpoints" --conns 8 --clients 64 \
            --duration "$duration" --rate "$rate" --output json $flag 2>/dev/null | tail -1)
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
done | tee /tmp/cpu-per-put.$$
python3 - /tmp/cpu-per-put.$$ <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("put")]
plain = [float(r[4]) for r in rows if r[0] == "put"]
session = [float(r[4]) for r in rows if r[0] == "put+session"]
p, s = statistics.median(plain), statistics.median(session)
print(f"median server CPU per put: plain {p:.1f} us, session {s:.1f} us, ratio {s / p:.3f}")
PY
rm -f /tmp/cpu-per-put.$$
