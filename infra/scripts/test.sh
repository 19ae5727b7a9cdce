#!/usr/bin/env bash
# Runs every test: unit tests next to the code, native launcher tests, end-to-end tests against a
# real Redis, registry, API and worker. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
npx --no-install tsc -p tsconfig.json --noEmit
mapfile -t files < <(find core api worker native test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
echo "sbx: ${#files[@]} test files" >&2
exec node --import tsx --test --test-concurrency="${SBX_TEST_CONCURRENCY:-2}" --test-reporter=spec --test-timeout=600000 "${files[@]}"
