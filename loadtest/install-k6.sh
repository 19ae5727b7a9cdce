#!/usr/bin/env bash
# k6 is on neither npm nor Debian: build the pinned version from the Go module proxy into .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
K6_VERSION=${K6_VERSION:-v1.4.2}
BIN=.tools/bin/k6
if [[ -x $BIN ]] && "$BIN" version 2>/dev/null | grep -q "${K6_VERSION#v}"; then exit 0; fi
command -v go >/dev/null || { echo "install-k6: Go is required (apt-get install golang-go, or Go >= 1.23)" >&2; exit 1; }
echo "install-k6: building k6 $K6_VERSION (a few minutes the first time)" >&2
GOBIN="$(pwd)/.tools/bin" go install "go.k6.io/k6@${K6_VERSION}"
"$BIN" version
