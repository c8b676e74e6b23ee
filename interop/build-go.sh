#!/usr/bin/env bash
# Build the Go interop helper `mlnode` offline, in GOPATH mode, against
# Debian's packaged memberlist (golang-github-hashicorp-memberlist-dev).
#
#   interop/build-go.sh [OUT [PKGDIR]]
#       OUT defaults to target/interop/mlnode, PKGDIR (a main package) to
#       interop/go/mlnode; bench/build-go.sh builds bench/go/mlbench with it.
#
# Idempotent: rebuilds only when main.go is newer than OUT. No network use.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:-$repo/target/interop/mlnode}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
pkg="${2:-$here/go/mlnode}"
case "$pkg" in /*) ;; *) pkg="$PWD/$pkg" ;; esac
src="$pkg/main.go"
debgo=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
    echo "build-go.sh: error: 'go' not found; install Debian package golang-go" >&2
    exit 1
fi
if [ ! -f "$debgo/src/github.com/hashicorp/memberlist/memberlist.go" ]; then
    echo "build-go.sh: error: $debgo/src/github.com/hashicorp/memberlist missing;" \
         "install Debian package golang-github-hashicorp-memberlist-dev" >&2
    exit 1
fi

if [ -x "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
    echo "build-go.sh: $out is up to date"
    exit 0
fi

mkdir -p "$(dirname "$out")"
work="$(dirname "$out")/go-work"
mkdir -p "$work/gopath" "$work/cache"

# GOPATH mode, fully offline: packages come only from /usr/share/gocode.
export GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local GOWORK=off
export GOPATH="$work/gopath:$debgo"
export GOCACHE="${GOCACHE:-$work/cache}"
export CGO_ENABLED=0

cd "$pkg"
go build -o "$out.tmp" . 
mv -f "$out.tmp" "$out"
echo "build-go.sh: built $out ($(go version))"
