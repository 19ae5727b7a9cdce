#!/usr/bin/env bash
# Installs what sbx needs on a Debian machine, and only what is missing: Debian packages, npm
# dependencies, the native launcher build. Safe to run again; quiet when nothing is to do.
#   install-deps.sh            runtime + test dependencies
#   install-deps.sh --bench    also the reference runtimes the benchmarks compare against
set -euo pipefail
cd "$(dirname "$0")/../.."

need=(redis-server docker-registry busybox-static iproute2 curl attr coreutils openssl gcc libc6-dev make g++ musl-tools python3 apache2-utils zstd libzstd-dev skopeo umoci)
if [[ "${1:-}" == "--bench" ]]; then need+=(crun runc bubblewrap mmdebstrap tinyproxy); fi

missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "sbx: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
  echo "sbx: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm dependencies: again only when package.json / the lock file changed since the last install.
stamp=node_modules/.sbx-install-stamp
if [[ ! -f $stamp || package.json -nt $stamp || ( -f package-lock.json && package-lock.json -nt $stamp ) ]]; then
  echo "sbx: installing npm dependencies" >&2
  # npm install, not npm ci: npm ci rejects this lock file for the platform-specific optional
  # packages of msgpackr-extract (a BullMQ dependency) that it lists without versions.
  npm install --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
fi

# The native addon: rebuilt when a source is newer than the binary.
addon=native/build/Release/sbx_native.node
if [[ ! -f $addon || ! -f native/build/Release/sbx_zstd.node ]] || [[ -n "$(find native/src native/binding.gyp -newer "$addon" -print -quit)" ]]; then
  echo "sbx: building the native launcher" >&2
  npx --no-install node-gyp rebuild --directory native --loglevel=error >&2
fi
