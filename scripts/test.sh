#!/bin/sh
# Runs Rafter's whole test suite: installs what the tests need (etcd, etcdctl,
# protoc for the etcd-client dev-dependency) when missing, checks formatting
# and lints, then runs every test with cargo-nextest (cargo test if absent).
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
