#!/usr/bin/env bash
# The soak: 8 test hosts (network namespaces on a bridge; 6 headcount
# agents, 2 Go memberlist nodes) for M minutes with random faults
# (partitions, a 3|5 split, one-way cuts, 10% loss, SIGSTOP, kill -9 and
# restart on the same or a new address), the invariants checked after each
# fault, and a summary at the end. Needs root, iproute2 and nftables.
#
#   scripts/soak.sh --minutes M [--seed N]
#
# The summary is also appended to target/faults/results.jsonl and the
# timeline written to target/faults/timelines/soak.txt; the newest soak then
# goes into docs/reliability/data/ and docs/reliability.md is rewritten.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

minutes=10
seed=
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: scripts/soak.sh --minutes M [--seed N]" >&2; exit 2 ;;
    esac
done
export HEADCOUNT_SOAK_MINUTES="$minutes"
[ -n "$seed" ] && export HEADCOUNT_SOAK_SEED="$seed"
cargo test -p headcount-cli --test faults -- --ignored --exact soak --nocapture
# The newest soak replaces the one in the page's committed data; then the
# page is rewritten (scripts/reliability.sh --doc-only).
data=docs/reliability/data
mkdir -p "$data/timelines"
{
    grep -v '"kind":"soak"' "$data/results.jsonl" 2>/dev/null || true
    grep '"kind":"soak"' target/faults/results.jsonl | tail -n 1
} > "$data/results.new"
mv "$data/results.new" "$data/results.jsonl"
cp target/faults/timelines/soak.txt "$data/timelines/" 2>/dev/null || true
scripts/reliability.sh --doc-only
