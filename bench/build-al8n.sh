#!/usr/bin/env bash
# Build the al8n-memberlist twin (bench/al8n, its own cargo project, not a
# member of the headcount workspace) and copy the binary to OUT.
#
#   bench/build-al8n.sh [OUT]     # OUT defaults to target/bench/al8n-bench
#
# Uses the committed Cargo.lock (--locked); works offline once the crates
# are in ~/.cargo (it tries --offline first, then the network).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:-$repo/target/bench/al8n-bench}"
cd "$here/al8n"
cargo build --release --quiet --locked --offline 2>/dev/null ||
    cargo build --release --quiet --locked
mkdir -p "$(dirname "$out")"
cp target/release/al8n-bench "$out"
