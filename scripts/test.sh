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
# seed budget must catch it (the test fails if the bug goes unnoticed). The
# bugs are compiled into the tests' build (rafter-sim's dev-dependencies)
# and chosen at run time by RAFTER_FAULT (names in
# crates/rafter-core/src/fault.rs), so the checks rebuild nothing.
faults="fault-local-reads fault-ack-uncommitted fault-ack-before-fsync \
    fault-read-before-applied fault-snapshot-late fault-slot-by-index \
    fault-watch-skip-full fault-watch-dup fault-lease-renew-anywhere \
    fault-apply-after-cancel fault-forget-session-result fault-local-write-twice \
    fault-conflict-ignored fault-defrag-drop-history fault-promote-skips-raft"
run_binary() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast -E "binary($1)"
    else
        cargo test -p "$2" --test "$1"
    fi
}
for fault in $faults; do
    echo "mutation check: $fault"
    RAFTER_FAULT=$fault run_binary campaign rafter-sim
done

# The disk campaign's mutation check: with the server's Raft log skipping
# fsync, the campaign (kill -9 of every member, unsynced writes dropped)
# must find lost acknowledged writes or members that cannot come back (the
# test asserts it does).
echo "mutation check: fault-log-skips-fsync"
RAFTER_FAULT=fault-log-skips-fsync run_binary disk_campaign rafter

# The Raft log entry cache's mutation check: with the cache keeping a
# suffix a conflicting append replaced, its model test must see reads that
# differ from the persisted log (the test asserts it does).
echo "mutation check: fault-log-cache-stale"
if cargo nextest --version >/dev/null 2>&1; then
    RAFTER_FAULT=fault-log-cache-stale cargo nextest run --workspace --no-fail-fast \
        -E 'test(entry_cache_reads_match_the_persisted_log)'
else
    RAFTER_FAULT=fault-log-cache-stale cargo test -p rafter-storage --features faults \
        entry_cache_reads_match_the_persisted_log
fi

# The consistent client cache's mutation check: with consistent reads that
# skip the catch-up turned on, its linearizability test must see the
# violation (the test asserts it does).
echo "mutation check: fault-cache-no-catch-up"
RAFTER_FAULT=fault-cache-no-catch-up run_binary cache_faults rafter
