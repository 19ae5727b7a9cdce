#!/usr/bin/env bash
# The production build: `npm run build [-- OUT_DIR]` (default dist/) compiles the API, the worker, the
# native wrapper, the client and the CLI with tsc (tsconfig.build.json: .ts imports rewritten to .js,
# declarations for the client; no tests, benches or fixtures) and copies beside the JavaScript what it
# loads at run time: the Lua scripts (core/src/lua, read with new URL(..., import.meta.url)) and the
# native build (sbx_native.node, sbx_zstd.node, sbx-init: native/index.js and
# worker/src/images/layers/decoder-addon.js find them at <out>/native/build/Release, the same relative
# place as in the source tree). Run it with plain node: `node dist/api/src/main.js`,
# `node dist/worker/src/main.js`. The output appears at once (built beside it, then renamed), so a
# failed build leaves the previous one in place.
# Node resolves the dependencies by walking up from the built files: OUT_DIR lies inside this checkout,
# or beside a node_modules holding them (a Docker image's /app, /opt/sbx, a link to this one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
out=$(realpath -m "${1:-dist}")
tmp="$out.building-$$"
trap 'rm -rf "$tmp"' EXIT

release=native/build/Release
natives=(sbx_native.node sbx_zstd.node sbx-init)
for f in "${natives[@]}"; do
  if [[ ! -f $release/$f ]]; then
    echo "sbx build: building the native launcher ($release/$f is missing)" >&2
    npx --no-install node-gyp rebuild --directory native --loglevel=error >&2
    break
  fi
done

rm -rf "$tmp"
mkdir -p "$tmp"
# What infra/scripts/up.sh compares the sources with to decide whether to build again: made before
# tsc reads them, so a file changed during the build counts as newer.
git -C "$ROOT" rev-parse --short HEAD 2>/dev/null >"$tmp/.build-stamp" || : >"$tmp/.build-stamp"
npx --no-install tsc -p tsconfig.build.json --outDir "$tmp"
# The CLI once more as one file (cli/build/bundle.ts): what package.json's bin runs when installed,
# started in a third of the time Node takes to load the ~80 compiled modules it imports.
npx --no-install tsx cli/build/bundle.ts "$tmp/cli/bin/sbx.mjs"

# Every other file in the compiled folders that the code may read (docs, tests, benches stay out, and
# JavaScript of the source tree such as cli/bin/sbx.js, the launcher that picks dist/ or the source).
while IFS= read -r -d '' f; do
  mkdir -p "$tmp/$(dirname "$f")"
  cp -p "$f" "$tmp/$f"
done < <(find core/src api/src worker/src client/src cli -type f ! -name '*.ts' ! -name '*.md' ! -name '*.js' \
  ! -path '*/bench/*' ! -path '*/test/*' ! -path '*/fixtures/*' ! -path '*/node_modules/*' -print0)

mkdir -p "$tmp/$release"
for f in "${natives[@]}"; do cp -p "$release/$f" "$tmp/$release/$f"; done

# ES modules wherever the folder is copied to (a Docker image, /opt/sbx/dist), as in package.json,
# and the version (what ../../package.json means from the compiled CLI, as from its source).
node -e 'const p = require("./package.json"); console.log(JSON.stringify({ version: p.version, private: true, type: "module" }, null, 2))' >"$tmp/package.json"
# Entries with a #! line (the CLI, package.json "bin") run directly.
while IFS= read -r -d '' f; do
  if [[ $(head -c 2 "$f") == '#!' ]]; then chmod +x "$f"; fi
done < <(find "$tmp" -name '*.js' -print0)

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "sbx build: $(find "$out" -name '*.js' | wc -l) modules in ${out#"$ROOT"/}" >&2
