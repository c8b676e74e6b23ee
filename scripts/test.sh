#!/usr/bin/env bash
# The whole test suite: the library's examples, then unit, property,
# loopback-cluster and Go interop tests.
#
#   scripts/test.sh [extra cargo test args]
#
# The interop tests run real Go peers: Debian's serf, golang-go and
# golang-github-hashicorp-memberlist-dev. When one is missing and we are root
# on Debian, this installs it with apt-get; otherwise it says what to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v serf >/dev/null 2>&1 || need+=(serf)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -f /usr/share/gocode/src/github.com/hashicorp/memberlist/memberlist.go ] ||
    need+=(golang-github-hashicorp-memberlist-dev)
# The fault suite (tests/faults.rs) runs only as root with ip and nft; it
# skips, saying so, without them.
if [ "$(id -u)" = 0 ]; then
    command -v ip >/dev/null 2>&1 || need+=(iproute2)
    command -v nft >/dev/null 2>&1 || need+=(nftables)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${need[@]}" </dev/null
    else
        echo "scripts/test.sh: the interop tests need Debian packages: ${need[*]}" >&2
        echo "  install them with: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
fi

echo "==> building the Go memberlist helper"
interop/build-go.sh target/interop/mlnode

# The library's examples are what users copy: each one asserts what it
# shows and exits non-zero when it fails (join_serf needs a Serf agent, so
# cargo test only builds it).
for example in chat kv discovery; do
    echo "==> cargo run -p headcount --example $example"
    cargo run -q -p headcount --example "$example"
done

# The lean agent: headcount-cli without its default features (agent and
# keygen only; no HTTP API, DNS, client, demo, bench or tune). Its unit
# tests and the agent's end-to-end tests run on the binary built that way.
echo "==> cargo test -p headcount-cli --no-default-features (the lean agent)"
cargo test -p headcount-cli --no-default-features --bin headcount --test lean --test cli
echo "==> cargo test -p headcount --no-default-features --lib (no DNS, no metrics)"
cargo test -p headcount --no-default-features --lib

echo "==> cargo test --workspace"
exec cargo test --workspace "$@"
