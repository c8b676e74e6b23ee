#!/usr/bin/env bash
# Go-only interop smoke test (no Rust): two mlnode processes talk to each
# other, then an mlnode joins a two-agent Serf cluster. Loopback only.
#
#   interop/smoke.sh [MLNODE]     # default target/interop/mlnode
#
# Uses 127.0.0.31-127.0.0.35; kills everything it started on exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
M="${1:-$here/../target/interop/mlnode}"
[ -x "$M" ] || { echo "smoke: $M missing; run interop/build-go.sh" >&2; exit 1; }
command -v serf >/dev/null || { echo "smoke: serf missing (apt-get install serf)" >&2; exit 1; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
    exec 7>&- 8>&- 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${ok:-0}" != 1 ]; then
        for f in "$tmp"/*.out "$tmp"/*.err "$tmp"/*.log "$tmp"/*.json "$tmp"/*.txt; do [ -f "$f" ] || continue; echo "----- $f"; tail -n 30 "$f"; done >&2
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for FILE PATTERN [SECONDS]: poll until grep -q matches.
wait_for() {
    local i
    for ((i = 0; i < ${3:-15} * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "smoke: FAIL: timed out waiting for '$2' in $1" >&2
    return 1
}

echo "smoke: mlnode <-> mlnode"
mkfifo "$tmp/a.in" "$tmp/b.in"
"$M" -name a -bind 127.0.0.31:7946 <"$tmp/a.in" >"$tmp/a.out" 2>"$tmp/a.err" &
pids+=($!)
exec 7>"$tmp/a.in"
# The first stdout line of mlnode is its own join event: it is listening.
wait_for "$tmp/a.out" '"event":"join","node":"a"'
"$M" -name b -bind 127.0.0.32:7946 -join 127.0.0.31:7946 <"$tmp/b.in" >"$tmp/b.out" 2>"$tmp/b.err" &
pids+=($!)
exec 8>"$tmp/b.in"
wait_for "$tmp/a.out" '{"event":"join","node":"b","addr":"127.0.0.32:7946","state":"alive"}'
wait_for "$tmp/b.out" '{"event":"join","node":"a","addr":"127.0.0.31:7946","state":"alive"}'
echo "send-reliable b hello reliable" >&7
echo "send-best-effort a hello best effort" >&8
wait_for "$tmp/b.out" '{"event":"user","msg":"hello reliable"}'
wait_for "$tmp/a.out" '{"event":"user","msg":"hello best effort"}'
echo "leave" >&8
wait_for "$tmp/a.out" '{"event":"leave","node":"b","addr":"127.0.0.32:7946","state":"left"}'
echo "members" >&7
wait_for "$tmp/a.out" '"members":\[{"node":"a","addr":"127.0.0.31:7946","state":"alive"},{"node":"b","addr":"127.0.0.32:7946","state":"left"}\]'
echo "quit" >&8
exec 7>&- 8>&-   # EOF on a's stdin: graceful leave + exit 0

echo "smoke: mlnode <-> serf"
serf agent -node s1 -bind 127.0.0.33:7946 -rpc-addr 127.0.0.33:7373 >"$tmp/s1.log" 2>&1 &
pids+=($!)
serf agent -node s2 -bind 127.0.0.34:7946 -rpc-addr 127.0.0.34:7373 -tag role=web >"$tmp/s2.log" 2>&1 &
pids+=($!)
wait_for "$tmp/s1.log" 'agent: Serf agent starting'
wait_for "$tmp/s2.log" 'agent: Serf agent starting'
for i in $(seq 50); do serf members -rpc-addr 127.0.0.34:7373 >/dev/null 2>&1 && break; sleep 0.1; done
serf join -rpc-addr 127.0.0.34:7373 127.0.0.33:7946
"$M" -name g1 -bind 127.0.0.35:7946 -profile lan -delegate-versions 2,5,5 \
    -join 127.0.0.33:7946 -stdin=false </dev/null >"$tmp/g1.out" 2>"$tmp/g1.err" &
pids+=($!)
wait_for "$tmp/g1.out" '{"event":"join","node":"s2","addr":"127.0.0.34:7946","state":"alive"}'
# -name/-status are anchored regexps; an empty "members" list means no match.
for i in $(seq 100); do
    serf members -rpc-addr 127.0.0.34:7373 -format json -name g1 -status alive >"$tmp/members.json"
    grep -q '"addr": "127.0.0.35:7946"' "$tmp/members.json" && break
    sleep 0.1
done
wait_for "$tmp/members.json" '"addr": "127.0.0.35:7946"' 1
serf members -rpc-addr 127.0.0.34:7373 -detailed -name s1 >"$tmp/members.txt"
wait_for "$tmp/members.txt" 'Protocol Version: 5  Available Protocol Range: \[2, 5\]' 1
serf leave -rpc-addr 127.0.0.34:7373 >/dev/null
wait_for "$tmp/g1.out" '{"event":"leave","node":"s2","addr":"127.0.0.34:7946","state":"left"}'
ok=1
echo "smoke: OK"
