#!/usr/bin/env bash
# Runs `headcount bench`, the Go twin `mlbench` and the al8n-memberlist
# twin `al8n-bench` side by side and writes docs/benchmarks.md (medians and
# the headcount/Go and headcount/al8n ratios).
#
#   bench/run.sh                 # N = 16 64 256, 5 repeats, 30 s runs, kill at 12 s (~17 min; ~25 min with al8n)
#   bench/run.sh --quick         # N = 16 64, 1 repeat, 25 s runs, kill at 10 s (~2 min; ~3 min with al8n)
#   bench/run.sh --nodes "16 64" --repeats 5 --duration 40 --kill-at 20 \
#                --profile local --out /tmp/b.md
#   bench/run.sh --no-al8n       # headcount and Go only (the al8n twin is
#                                # on by default when bench/build-al8n.sh builds it)
#   bench/run.sh --no-per-process     # skip the one-node-per-process runs
#   bench/run.sh --per-process-only   # only those (the report keeps the
#                                     # one-process rows of target/bench/results.jsonl)
#   bench/run.sh --per-process-steady 60 --per-process-repeats 3
#                                # one node per process (bench/perprocess.py):
#                                # 8 processes of each, steady window, then a
#                                # SIGKILL; default 60 s x 3 (--quick: 20 s x 1)
#   bench/run.sh --agent-static  # the full agent built with a static glibc too
#                                # (+crt-static; see bench/notes.md)
#   bench/run.sh --append --nodes 1000 --duration 60 --kill-at 40 \
#                --taskset 1 --no-per-process
#                                # add rows to the last run's results (here
#                                # the 1,000-node rows, with their own timing)
#                                # and render the report from all of them
#   bench/run.sh --taskset 1     # pin every one-process run to these CPUs
#                                # (taskset -c; Go then runs with as many
#                                # threads as CPUs given)
#
# The agents of the per-process runs are `cargo build --profile dist`
# (LTO, one codegen unit, opt-level "z": the shipped binary; the first
# build takes minutes), the one-process runs use the release profile. The
# per-process runs also run the lean agent as documented (`--no-default-features`:
# no HTTP API, DNS, client, demo, bench or tune; static glibc;
# target/bench/headcount-lean).
#
#   MEMBERLIST_SRC=/src/memberlist MEMBERLIST_GOPATH=/src/gopath \
#   MEMBERLIST_VERSION=v0.6.0 bench/run.sh
#                                # Go built against that source tree instead
#                                # of Debian's 0.2.2 (see bench/build-go.sh)
#
# Installs what it needs when missing (Debian: golang-go,
# golang-github-hashicorp-memberlist-dev, python3), builds the programs
# (offline), runs each configuration `repeats` times alternating the
# implementations, keeps the raw JSON lines in target/bench/results.jsonl
# and renders the report with bench/report.py. Loopback only; headcount
# uses ports 20000.., Go 30000.., al8n 10000.. (override with
# --ports "A B" or --ports "A B C"); the one-node-per-process runs use
# those plus 1000 (and headcount's HTTP API those plus 1100). All below
# Linux's ephemeral range (32768..): at 1,000 nodes the runs before leave
# thousands of outgoing TCP connections in TIME_WAIT on ephemeral ports,
# and a node that wants one of those ports cannot bind it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
nodes="16 64 256"
repeats=5
duration=30
kill_at=12
profile=lan
runtime=current
out="$repo/docs/benchmarks.md"
ports="20000 30000 10000"
al8n=1
per_process=1
one_process=1
pp_steady=60
pp_repeats=3
pp_processes=8
agent_static=0
append=0
pin=()
pinned=""
args="$*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) nodes="16 64"; repeats=1; duration=25; kill_at=10; pp_steady=20; pp_repeats=1; shift ;;
        --nodes) nodes="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --kill-at) kill_at="$2"; shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        --runtime) runtime="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --ports) ports="$2"; shift 2 ;;
        --al8n) al8n=1; shift ;;
        --no-al8n) al8n=0; shift ;;
        --per-process) per_process=1; shift ;;
        --no-per-process) per_process=0; shift ;;
        --per-process-only) per_process=1; one_process=0; shift ;;
        --per-process-steady) pp_steady="$2"; shift 2 ;;
        --per-process-repeats) pp_repeats="$2"; shift 2 ;;
        --per-process-processes) pp_processes="$2"; shift 2 ;;
        --agent-static) agent_static=1; shift ;;
        --append) append=1; shift ;;
        --taskset) pin=(taskset -c "$2"); pinned="$2"; shift 2 ;;
        -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
read -r rs_port go_port al_port <<<"$ports"
al_port="${al_port:-10000}"

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -f /usr/share/gocode/src/github.com/hashicorp/memberlist/memberlist.go ] ||
    need+=(golang-github-hashicorp-memberlist-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
    echo "run.sh: installing ${need[*]}" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "run.sh: building" >&2
(cd "$repo" && cargo build --release --quiet -p headcount-cli)
# Go: Debian's memberlist, or the source tree in MEMBERLIST_SRC (see
# bench/build-go.sh), built to its own file so neither is taken for the other.
gob="$repo/target/bench/mlbench"
[ -z "${MEMBERLIST_SRC:-}" ] || gob="$repo/target/bench/mlbench-src"
mkdir -p "$repo/target/bench"
golog="$repo/target/bench/build-go.log"
if ! "$here/build-go.sh" "$gob" 2>"$golog"; then
    cat "$golog" >&2
    exit 1
fi
cat "$golog" >&2
go_version=$(sed -n 's/^build-go.sh: memberlist //p' "$golog" | tail -n 1)
rs="$repo/target/release/headcount"
agent="$repo/target/dist/headcount"
lean="$repo/target/bench/headcount-lean"
agent_build="dist profile"
if [ "$per_process" -eq 1 ]; then
    # --target keeps the flag off build scripts and proc macros.
    triple="$(rustc -vV | sed -n 's/^host: //p')"
    static_build() {
        (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
            cargo build --profile dist --quiet -p headcount-cli --target "$triple" "$@")
    }
    # The lean agent, built as README.md says (static glibc: it looks no
    # names up, so no NSS modules are loaded); copied aside, since the full
    # static build writes the same file.
    static_build --no-default-features
    cp "$repo/target/$triple/dist/headcount" "$lean"
    if [ "$agent_static" -eq 1 ]; then
        static_build
        agent="$repo/target/$triple/dist/headcount"
        agent_build="dist profile, static glibc"
    else
        (cd "$repo" && cargo build --profile dist --quiet -p headcount-cli)
    fi
    agent_build="$agent_build; the lean build: --no-default-features, dist profile, static glibc"
fi
alb="$repo/target/bench/al8n-bench"
if [ "$al8n" -eq 1 ]; then
    if ! "$here/build-al8n.sh" "$alb"; then
        echo "run.sh: bench/build-al8n.sh failed: running without the al8n twin" >&2
        al8n=0
    fi
fi

results="$repo/target/bench/results.jsonl"
mkdir -p "$(dirname "$results")"
{ [ "$one_process" -eq 0 ] || [ "$append" -eq 1 ]; } && [ -f "$results" ] || : >"$results"
[ "$one_process" -eq 1 ] || nodes=""
for n in $nodes; do
    # N/16 killed, at least 1 and at most 16 (the issue's "a kill of 16" at 1,000).
    kill=$(( n / 16 )); [ "$kill" -ge 1 ] || kill=1; [ "$kill" -le 16 ] || kill=16
    for r in $(seq 1 "$repeats"); do
        common=(--nodes "$n" --duration "$duration" --kill "$kill" --kill-at "$kill_at" --profile "$profile")
        # A run still going at 4x its duration has hung (Go's twin did, at
        # N = 256 on 2 cores): it is killed and recorded as hung.
        limit=$(( ${duration%.*} * 4 + 30 ))
        run_rs() { timeout -s KILL "$limit" "${pin[@]}" "$rs" bench "${common[@]}" --base-port "$rs_port" --runtime "$runtime" 2>>"$repo/target/bench/stderr.log"; }
        run_go() { timeout -s KILL "$limit" "${pin[@]}" "$gob" -nodes "$n" -duration "$duration" -kill "$kill" -kill-at "$kill_at" -profile "$profile" -base-port "$go_port" 2>>"$repo/target/bench/stderr.log"; }
        run_al() { timeout -s KILL "$limit" "${pin[@]}" "$alb" "${common[@]}" --base-port "$al_port" --runtime "$runtime" 2>>"$repo/target/bench/stderr.log"; }
        # Alternate which one goes first, against drift of the machine.
        if [ "$al8n" -eq 1 ]; then
            case $(( r % 3 )) in
                1) order="rs go al" ;;
                2) order="go al rs" ;;
                *) order="al rs go" ;;
            esac
        elif [ $(( r % 2 )) -eq 1 ]; then order="rs go"; else order="go rs"; fi
        for which in $order; do
            echo "run.sh: N=$n repeat $r/$repeats $which" >&2
            case "$which" in
                rs) impl=headcount; line=$(run_rs || true) ;;
                go) impl=go-memberlist; line=$(run_go || true) ;;
                al) impl=al8n-memberlist; line=$(run_al || true) ;;
            esac
            case "$line" in
                "{"*) ;;
                *) echo "run.sh: N=$n $impl gave no result within ${limit}s: recorded as hung" >&2
                   line="{\"implementation\":\"$impl\",\"nodes\":$n,\"killed\":$kill,\"hung\":true}" ;;
            esac
            echo "$line" | tee -a "$results" >&2
            sleep 1
        done
    done
done

# One node per process: 8 processes of each implementation, alternating.
pp_results="$repo/target/bench/perprocess.jsonl"
if [ "$per_process" -eq 1 ]; then
    : >"$pp_results"
    for r in $(seq 1 "$pp_repeats"); do
        impls="headcount headcount-lean headcount-http go"
        [ "$al8n" -eq 0 ] || impls="$impls al8n"
        # Rotate the order against drift of the machine.
        set -- $impls
        for _ in $(seq 2 "$r"); do set -- "${@:2}" "$1"; done
        for impl in "$@"; do
            case "$impl" in
                headcount|headcount-http) bin="$agent"; port=$(( rs_port + 1000 )) ;;
                headcount-lean) bin="$lean"; port=$(( rs_port + 1000 )) ;;
                go) bin="$gob"; port=$(( go_port + 1000 )) ;;
                al8n) bin="$alb"; port=$(( al_port + 1000 )) ;;
            esac
            echo "run.sh: per-process repeat $r/$pp_repeats $impl" >&2
            line=$(python3 "$here/perprocess.py" --impl "$impl" --bin "$bin" \
                --processes "$pp_processes" --steady "$pp_steady" --profile "$profile" \
                --base-port "$port" --stderr "$repo/target/bench/stderr.log" || true)
            case "$line" in
                "{"*) echo "$line" | tee -a "$pp_results" >&2 ;;
                *) echo "run.sh: per-process $impl gave no result" >&2 ;;
            esac
            sleep 1
        done
    done
fi
pp_args=()
pp_params="$repo/target/bench/perprocess.params"
if [ "$per_process" -eq 1 ]; then
    echo "processes=$pp_processes steady=${pp_steady}s repeats=$pp_repeats profile=$profile, headcount built with the $agent_build" >"$pp_params"
fi
if { [ "$per_process" -eq 1 ] || [ "$append" -eq 1 ]; } && [ -s "$pp_results" ]; then
    pp_args=(--per-process "$pp_results" --per-process-params "$(cat "$pp_params" 2>/dev/null)")
fi

# The invocations whose rows the results hold (more than one with --append).
invocations="$repo/target/bench/invocations"
{ [ "$append" -eq 1 ] || [ "$one_process" -eq 0 ]; } || : >"$invocations"
if [ "$one_process" -eq 1 ]; then
    printf '%s\t%s\n' "bench/run.sh $args" \
        "profile=$profile duration=${duration}s kill-at=${kill_at}s repeats=$repeats runtime=$runtime${pinned:+ pinned to CPU $pinned}" >>"$invocations"
fi
commands=$(cut -f1 "$invocations" | paste -sd '|' | sed 's/|/`, then `/g')
params=$(cut -f2 "$invocations" | paste -sd '|' | sed 's/|/; then /g')
mkdir -p "$(dirname "$out")"
python3 "$here/report.py" "$results" "${pp_args[@]}" \
    --notes "$here/notes.md" \
    --command "${commands:-bench/run.sh $args}" \
    --params "${params:-profile=$profile}" \
    --go-version "${go_version:-unknown}" \
    >"$out"
echo "run.sh: wrote $out" >&2
