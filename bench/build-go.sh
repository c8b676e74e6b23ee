#!/usr/bin/env bash
# Build the Go benchmark `mlbench` offline, in GOPATH mode, against Debian's
# packaged memberlist (golang-github-hashicorp-memberlist-dev).
#
#   bench/build-go.sh [OUT]     # OUT defaults to target/bench/mlbench
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:-$repo/target/bench/mlbench}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
src="$here/go/mlbench/main.go"
debgo=/usr/share/gocode

command -v go >/dev/null 2>&1 || { echo "build-go.sh: 'go' not found; install golang-go" >&2; exit 1; }
[ -f "$debgo/src/github.com/hashicorp/memberlist/memberlist.go" ] || {
    echo "build-go.sh: install golang-github-hashicorp-memberlist-dev" >&2; exit 1; }

if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
    exit 0
fi
mkdir -p "$(dirname "$out")"
work="$(dirname "$out")/go-work"
mkdir -p "$work/gopath" "$work/cache"
export GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local GOWORK=off
export GOPATH="$work/gopath:$debgo"
export GOCACHE="${GOCACHE:-$work/cache}"
export CGO_ENABLED=0
cd "$here/go/mlbench"
go build -o "$out.tmp" .
mv -f "$out.tmp" "$out"
echo "build-go.sh: built $out ($(go version))" >&2
