#!/bin/sh
# Runs Rafter's whole test suite: installs what the tests need (etcd, etcdctl,
# protoc for the etcd-client dev-dependency) when missing, checks formatting
# and lints, runs every test with cargo-nextest (cargo test if absent), then
# the simulator's mutation checks.
set -eu
cd "$(dirname "$0")/.."

sh scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# Mutation checks: with each test-only bug turned on, the simulator's CI
# seed budget must catch it (the test fails if the bug goes unnoticed).
# The bugs are compiled in once (`--features faults`) and chosen at run
# time by RAFTER_FAULT (names in crates/rafter-core/src/fault.rs).
for fault in fault-local-reads fault-ack-uncommitted fault-ack-before-fsync \
    fault-read-before-applied fault-snapshot-late fault-slot-by-index \
    fault-watch-skip-full fault-watch-dup fault-lease-renew-anywhere \
    fault-apply-after-cancel fault-forget-session-result fault-local-write-twice \
    fault-conflict-ignored; do
    echo "mutation check: $fault"
    RAFTER_FAULT=$fault cargo test -p rafter-sim --features faults --test campaign
done

# The consistent client cache's mutation check: with consistent reads that
# skip the catch-up compiled in, its linearizability test must see the
# violation (the test asserts it does).
echo "mutation check: fault-cache-no-catch-up"
cargo test -p rafter --test cache_faults --features rafter-client/fault-cache-no-catch-up
