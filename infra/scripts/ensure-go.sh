#!/usr/bin/env bash
# Prints the path of a `go` command that can build modules needing Go >= 1.21 (k6, kubeconform), and
# gets one when there is none, offline apart from Debian's and Go's registries:
#   - a `go` >= 1.21 on the PATH is used as is (it fetches whatever newer toolchain a module's go.mod
#     asks for from the module proxy itself: GOTOOLCHAIN=auto);
#   - otherwise Debian's golang-go is installed when no Go is there (bookworm has 1.19, too old for
#     either tool), and with it the toolchain module golang.org/toolchain@v0.0.1-go$GO_BOOTSTRAP.linux-<arch>
#     is downloaded from the Go module proxy (checksum-verified against sum.golang.org, exactly what
#     Go >= 1.21 does when it switches toolchains) into the module cache, and its go is printed.
#   ensure-go.sh            → /path/to/go   (errors on stderr, exit 1)
set -euo pipefail
GO_BOOTSTRAP=${GO_BOOTSTRAP:-1.24.9}

go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

if command -v go >/dev/null && (( $(go_minor go || echo 0) >= 21 )); then command -v go; exit 0; fi
if ! command -v go >/dev/null; then
  echo "ensure-go: installing Debian's golang-go" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends golang-go ca-certificates; } >/dev/null \
    || { echo "ensure-go: Go is required and apt-get install golang-go failed" >&2; exit 1; }
fi
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(go env GOARCH) ;; esac
mod="golang.org/toolchain@v0.0.1-go$GO_BOOTSTRAP.linux-$arch"
echo "ensure-go: $(go version) is older than 1.21; fetching the toolchain module $mod" >&2
dir="$(cd / && GOFLAGS=-mod=mod go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -f $dir/bin/go ]] || { echo "ensure-go: $mod has no bin/go ($dir)" >&2; exit 1; }
# Module zips keep no file modes: the module cache is read-only, its executables are made so here.
chmod u+w "$dir" "$dir/bin" "$dir/pkg/tool/linux_$arch" 2>/dev/null || true
chmod a+x "$dir"/bin/* "$dir/pkg/tool/linux_$arch"/*
echo "$dir/bin/go"
