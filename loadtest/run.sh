#!/usr/bin/env bash
# `npm run loadtest -- <trivial|mixed|sse|soak> [--own-stack]`: one k6 scenario (loadtest/scenarios/),
# exit non-zero when a threshold fails; see loadtest/run.ts. Env: BASE_URL SBX_API_KEY SBX_IMAGE and
# each scenario's own (RATE, DURATION, …).
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx loadtest/run.ts "$@"
