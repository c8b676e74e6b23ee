#!/usr/bin/env bash
# Build the Go benchmark `mlbench` offline, in GOPATH mode.
#
#   bench/build-go.sh [OUT]     # OUT defaults to target/bench/mlbench
#
# By default against Debian's packaged memberlist (0.2.2), with the same
# script as the interop helper. With MEMBERLIST_SRC set, against that source
# tree of hashicorp/memberlist instead (a checkout or an unpacked release,
# e.g. v0.6.0), still offline:
#
#   MEMBERLIST_SRC=/src/memberlist MEMBERLIST_GOPATH=/src/gopath \
#   MEMBERLIST_VERSION=v0.6.0 bench/build-go.sh
#
# The tree is copied under target/bench/ and patched there for Debian's Go
# 1.19 (v0.6.0 uses `slices.Clone` and a range over an int; nothing is
# changed in MEMBERLIST_SRC and no Go source is kept in this repository).
# Packages Debian lacks come from MEMBERLIST_GOPATH, a GOPATH-style tree
# (src/github.com/...) searched before /usr/share/gocode; v0.6.0 needs
# github.com/hashicorp/go-msgpack/v2 (v2.1.5: place the go-msgpack
# repository at src/github.com/hashicorp/go-msgpack/v2),
# github.com/hashicorp/go-metrics (v0.5.4: v0.6.0 needs Go 1.21's `maps`;
# memberlist uses its `compat` package, built with the `hashicorpmetrics`
# tag) and github.com/sean-/seed. A sample assembly from git checkouts:
#
#   g=/src/gopath/src/github.com; mkdir -p $g/hashicorp/go-msgpack/v2 \
#       $g/hashicorp/go-metrics $g/sean-/seed
#   git -C go-msgpack archive v2.1.5 | tar -x -C $g/hashicorp/go-msgpack/v2
#   git -C go-metrics archive v0.5.4 | tar -x -C $g/hashicorp/go-metrics
#   git -C seed archive HEAD | tar -x -C $g/sean-/seed
#
# Prints the memberlist version built against on the last line of stderr
# ("build-go.sh: memberlist VERSION"), which bench/run.sh records.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="${1:-$repo/target/bench/mlbench}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

if [ -z "${MEMBERLIST_SRC:-}" ]; then
    "$repo/interop/build-go.sh" "$out" "$here/go/mlbench"
    v=$(dpkg-query -W -f '${Version}' golang-github-hashicorp-memberlist-dev 2>/dev/null || echo unknown)
    echo "build-go.sh: memberlist ${v%%-*} (Debian golang-github-hashicorp-memberlist-dev $v)" >&2
    exit 0
fi

src="$(cd "$MEMBERLIST_SRC" && pwd)"
if [ ! -f "$src/memberlist.go" ]; then
    echo "build-go.sh: error: MEMBERLIST_SRC=$MEMBERLIST_SRC holds no memberlist.go" >&2
    exit 1
fi
# The version: MEMBERLIST_VERSION, else a tag of the checkout (an unpacked
# archive has none: say which release it is with MEMBERLIST_VERSION).
version="${MEMBERLIST_VERSION:-$(git -C "$src" describe --tags --always 2>/dev/null || true)}"
version="${version:-unknown}"

work="$(dirname "$out")/go-src-work"
rm -rf "$work/gopath/src"
dst="$work/gopath/src/github.com/hashicorp/memberlist"
mkdir -p "$dst" "$work/cache"
# Sources only: no tests, no VCS metadata.
(cd "$src" && find . -name '*.go' ! -name '*_test.go' ! -path './.git/*' -print0 |
    tar -c --null -T - -f -) | tar -x -C "$dst" -f -

# Go 1.19 patches, applied to the copy: `slices.Clone` (Go 1.21) becomes an
# append, and a range over an int (Go 1.22) a counted loop. Which ranges are
# over ints only the compiler knows, so the build is retried and each line
# it reports as "cannot range over X (variable of type int)" is rewritten.
if grep -q 'slices\.Clone(nodes)' "$dst/util.go" 2>/dev/null; then
    sed -i -e 's/slices\.Clone(nodes)/append([]*nodeState(nil), nodes...)/' \
           -e '/^[[:space:]]*"slices"$/d' "$dst/util.go"
fi
range_over_int() { # FILE LINE NAME
    sed -i -E -e "$2s/for ([A-Za-z_][A-Za-z0-9_]*) := range $3 \{/for \1 := 0; \1 < $3; \1++ {/" \
              -e "$2s/for range $3 \{/for range_i := 0; range_i < $3; range_i++ {/" "$1"
}

export GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local GOWORK=off
export GOPATH="$work/gopath${MEMBERLIST_GOPATH:+:$MEMBERLIST_GOPATH}:/usr/share/gocode"
export GOCACHE="${GOCACHE:-$work/cache}"
export CGO_ENABLED=0
mkdir -p "$(dirname "$out")"
# compat re-exports armon/go-metrics unless built with this tag, and
# Debian's armon/go-metrics is too old for it; the tag makes it use
# hashicorp/go-metrics itself (the same library, renamed).
for attempt in 1 2 3 4 5 6; do
    if log=$(cd "$here/go/mlbench" && go build -tags hashicorpmetrics -o "$out.tmp" . 2>&1); then
        break
    fi
    fixes=$(printf '%s\n' "$log" |
        sed -n -E 's/^([^:]+\.go):([0-9]+):[0-9]+: cannot range over ([A-Za-z_][A-Za-z0-9_]*) \(variable of type int\)$/\1 \2 \3/p')
    if [ -z "$fixes" ] || [ "$attempt" -eq 6 ]; then
        printf '%s\n' "$log" >&2
        exit 1
    fi
    while read -r file line name; do
        # Go prints paths relative to the package it builds.
        file=$(cd "$here/go/mlbench" && realpath -m "$file")
        case "$file" in "$(realpath -m "$work")"/*) range_over_int "$file" "$line" "$name" ;;
            *) printf '%s\n' "$log" >&2; exit 1 ;; esac
    done <<<"$fixes"
done
mv -f "$out.tmp" "$out"
echo "build-go.sh: built $out against $src ($(go version))" >&2
echo "build-go.sh: memberlist $version (MEMBERLIST_SRC=$src)" >&2
