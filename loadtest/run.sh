#!/usr/bin/env bash
# Runs a k6 scenario against BASE_URL (default the local stack) and writes loadtest/results/summary.json.
#   loadtest/run.sh [submit-and-wait.js]   env: BASE_URL RATE DURATION VUS SBX_IMAGE SBX_API_KEY
set -euo pipefail
cd "$(dirname "$0")/.."
bash loadtest/install-k6.sh >/dev/null
mkdir -p loadtest/results
exec .tools/bin/k6 run --quiet "loadtest/${1:-submit-and-wait.js}"
