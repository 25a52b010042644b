#!/bin/sh
# Runs the fuzz targets (crates/rafter-fuzz) under libFuzzer, with the stable
# toolchain alone: the harness in fuzz/ is built with the coverage
# instrumentation cargo-fuzz would add (no sanitizer; Rust code is memory
# safe, and the bugs looked for are panics, hangs and runaway allocation).
#
#   sh scripts/fuzz.sh [RUNS] [TARGET ...]    default: 10000000 runs, every target
#   FUZZ_MAX_LEN=1024 sh scripts/fuzz.sh ...  a smaller input bound (default 65536)
#
# Each target starts from its seeds and fuzz/corpus/<target>; an input that
# crashes is saved under fuzz/artifacts/<target>/ and belongs in
# crates/rafter-fuzz/regressions/<target>/, which CI's smoke test replays.
set -eu
cd "$(dirname "$0")/.."
runs=${1:-10000000}
[ $# -gt 0 ] && shift
targets=${*:-"peer_message raft_command client_txn snapshot_file member_record txn_text log_file local_queue_file"}

cargo run --quiet -p rafter-fuzz --example write_seeds -- fuzz/corpus

cd fuzz
# With an explicit --target the flags reach only the fuzzed code, not build
# scripts and proc macros (which would not link without libFuzzer).
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --bins --target "$host"
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    regressions=../crates/rafter-fuzz/regressions/$target
    [ -d "$regressions" ] || regressions=
    echo "fuzzing $target for $runs runs"
    # shellcheck disable=SC2086 # $regressions is empty or one directory.
    "./target/$host/release/$target" -runs="$runs" -max_len="${FUZZ_MAX_LEN:-65536}" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" "corpus/$target" $regressions \
        2>"artifacts/$target.log" || { tail -n 40 "artifacts/$target.log"; exit 1; }
    grep -E "^Done|stat::number_of_executed_units|stat::peak_rss_mb" "artifacts/$target.log"
done
