#!/usr/bin/env bash
# k6 is on neither npm nor Debian: the pinned version is built from the Go module proxy (checksum-
# verified against sum.golang.org) into .tools/bin/k6, like infra/scripts/install-kubeconform.sh does
# kubeconform. Go comes from infra/scripts/ensure-go.sh (the one on the PATH if >= 1.21, else Debian's
# plus the toolchain module from the proxy). Quiet when k6 is there; prints its path on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
K6_VERSION=${K6_VERSION:-v1.4.2}
BIN=.tools/bin/k6
if [[ -x $BIN ]] && { "$BIN" version 2>/dev/null | grep -q "^k6 $K6_VERSION "; }; then echo "$(pwd)/$BIN"; exit 0; fi
go=$(bash infra/scripts/ensure-go.sh) || { echo "install-k6: no Go to build k6 with (see above)" >&2; exit 1; }
echo "install-k6: building k6 $K6_VERSION with $("$go" version | cut -d' ' -f3) (a few minutes the first time)" >&2
(cd / && GOBIN="$OLDPWD/.tools/bin" GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto "$go" install "go.k6.io/k6@$K6_VERSION") >&2 \
  || { echo "install-k6: go install go.k6.io/k6@$K6_VERSION failed" >&2; exit 1; }
"$BIN" version | grep -q "^k6 $K6_VERSION " || { echo "install-k6: $BIN does not say it is k6 $K6_VERSION: $("$BIN" version)" >&2; exit 1; }
echo "$(pwd)/$BIN"
