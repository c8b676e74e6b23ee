#!/usr/bin/env bash
# Build the Go benchmark `mlbench` offline, in GOPATH mode, against Debian's
# packaged memberlist, with the same script as the interop helper.
#
#   bench/build-go.sh [OUT]     # OUT defaults to target/bench/mlbench
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
exec "$repo/interop/build-go.sh" "${1:-$repo/target/bench/mlbench}" "$here/go/mlbench"
