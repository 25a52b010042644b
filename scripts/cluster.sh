#!/bin/sh
# Starts a local 3-member Rafter cluster on loopback (clients on 2379, 22379,
# 32379; peers on 2380, 22380, 32380, as etcd's Procfile does), with data in
# ./cluster.rafter/, and prints the endpoints. Ctrl-C stops all three.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p rafter
bin=target/release/rafter
data=${RAFTER_CLUSTER_DIR:-cluster.rafter}
mkdir -p "$data"
cluster="m1=http://127.0.0.1:2380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
pids=""
trap 'kill $pids 2>/dev/null; wait' INT TERM EXIT
for i in 1 2 3; do
    case $i in 1) c=2379 p=2380 ;; 2) c=22379 p=22380 ;; 3) c=32379 p=32380 ;; esac
    "$bin" --name "m$i" --data-dir "$data/m$i" \
        --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "$cluster" --initial-cluster-token rafter-dev-cluster \
        2>"$data/m$i.log" &
    pids="$pids $!"
done
echo "rafter cluster: endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 (logs in $data/)"
echo "try: ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 endpoint status -w table"
wait
