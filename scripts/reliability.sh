#!/usr/bin/env bash
# The long part of the fault suite (crates/headcount-cli/tests/faults.rs):
# heal times over 5 runs for one host cut off, a 2|3 split and a Go node cut
# off in a mixed cluster, Go memberlist alone for comparison, and 10% / 30%
# loss on every link with headcount and Go side by side (three runs); then regenerates
# docs/reliability.md from target/faults/ (with the last soak recorded
# there, if any: scripts/soak.sh). Needs root, iproute2, nftables and the
# Go helper's packages (see interop/README.md). About 50 minutes.
#
#   scripts/reliability.sh              run everything, then write the page
#   scripts/reliability.sh --doc-only   only rewrite the page from target/faults/
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
if [ -z "$doc_only" ]; then
    mkdir -p target/faults
    # Keep earlier soaks; replace everything else.
    if [ -f target/faults/results.jsonl ]; then
        grep '"kind":"soak"' target/faults/results.jsonl > target/faults/soak.jsonl || true
        mv target/faults/soak.jsonl target/faults/results.jsonl
    fi
    interop/build-go.sh target/interop/mlnode
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
"${t[@]}" --ignored --exact write_reliability_doc
echo "wrote docs/reliability.md"
