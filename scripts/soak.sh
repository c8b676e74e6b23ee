#!/usr/bin/env bash
# The soak: 8 test hosts (network namespaces on a bridge; 6 headcount
# agents, 2 Go memberlist nodes) for M minutes with random faults
# (partitions, a 3|5 split, one-way cuts, 10% loss, SIGSTOP, kill -9 and
# restart on the same or a new address), the invariants checked after each
# fault, and a summary at the end. Needs root, iproute2 and nftables.
#
#   scripts/soak.sh --minutes M [--seed N]
#
# The summary is also appended to target/faults/results.jsonl (see
# scripts/reliability.sh) and the timeline written to
# target/faults/timelines/soak.txt.
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
exec cargo test -p headcount-cli --test faults -- --ignored --exact soak --nocapture
