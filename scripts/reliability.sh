#!/usr/bin/env bash
# The long part of the fault suite (crates/headcount-cli/tests/faults.rs):
# heal times over 5 runs for one host cut off, a 2|3 split and a Go node cut
# off in a mixed cluster, Go memberlist alone for comparison, and 10% / 30%
# loss on every link with headcount and Go side by side (three runs); then regenerates
# docs/reliability.md from target/faults/, copied to docs/reliability/data/
# (soaks, scripts/soak.sh, and rows of a --baseline build are kept from the
# committed data until run again). Needs root, iproute2, nftables and the
# Go helper's packages (see interop/README.md). About 50 minutes.
#
#   scripts/reliability.sh              run everything, then write the page
#   scripts/reliability.sh --doc-only   only rewrite the page from docs/reliability/data/
#   scripts/reliability.sh --baseline BIN
#                                       also run the partition scenarios with
#                                       another headcount binary (e.g. one
#                                       built from main), labelled `main`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

doc_only=
baseline=
while [ $# -gt 0 ]; do
    case "$1" in
        --doc-only) doc_only=1; shift ;;
        --baseline) baseline="$2"; shift 2 ;;
        *) echo "usage: scripts/reliability.sh [--doc-only] [--baseline BIN]" >&2; exit 2 ;;
    esac
done

t=(cargo test -p headcount-cli --test faults --)
data=docs/reliability/data
if [ -z "$doc_only" ]; then
    mkdir -p target/faults/timelines
    # Start from the committed data when this tree has none of its own.
    if [ ! -f target/faults/results.jsonl ] && [ -f "$data/results.jsonl" ]; then
        cp "$data/results.jsonl" target/faults/results.jsonl
        cp "$data"/timelines/*.txt target/faults/timelines/ 2>/dev/null || true
    fi
    # Keep what this run does not redo: soaks (scripts/soak.sh) and, unless
    # --baseline is given, the rows of another build; replace the rest.
    if [ -f target/faults/results.jsonl ]; then
        if [ -n "$baseline" ]; then keep='"kind":"soak"'; else keep='"kind":"soak"|"build":"main"'; fi
        grep -E "$keep" target/faults/results.jsonl > target/faults/keep.jsonl || true
        mv target/faults/keep.jsonl target/faults/results.jsonl
    fi
    interop/build-go.sh target/interop/mlnode
    # The CI scenarios (timelines ci-*), then the long ones.
    "${t[@]}" --test-threads=1
    "${t[@]}" --ignored --test-threads=2 --nocapture heal_statistics
    # Two minutes of loss scatter from run to run: three runs of each.
    for run in 1 2 3; do
        echo "loss runs, round $run of 3"
        "${t[@]}" --ignored --test-threads=1 --nocapture loss_
    done
    if [ -n "$baseline" ]; then
        HEADCOUNT_FAULTS_BIN="$baseline" HEADCOUNT_FAULTS_BUILD=main \
            "${t[@]}" --ignored --test-threads=2 --nocapture \
            heal_statistics_one_host heal_statistics_split heal_statistics_mixed
    fi
fi
if [ -z "$doc_only" ]; then
    # The page's data, committed beside it: every row, and the timelines the
    # page shows (first run of each scenario, the CI scenarios, loss, soak).
    rm -rf "$data"; mkdir -p "$data/timelines"
    cp target/faults/results.jsonl "$data/"
    for f in target/faults/timelines/*.txt; do
        case "$(basename "$f")" in
            *-1.txt|ci-*|loss-*|soak.txt) cp "$f" "$data/timelines/" ;;
        esac
    done
fi
"${t[@]}" --ignored --exact write_reliability_doc
echo "wrote docs/reliability.md"
