#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each, seeded with the PKCS#12 fixtures.
# Usage: fuzz/smoke.sh [SECONDS]   (needs a nightly toolchain and `cargo install cargo-fuzz`)
set -euo pipefail
seconds="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
for target in $(cargo +nightly fuzz list); do
    corpus="corpus/$target"
    mkdir -p "$corpus"
    cp -n ../tests/data/p12/*.p12 "$corpus"/ 2>/dev/null || true
    echo "== $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds"
done
