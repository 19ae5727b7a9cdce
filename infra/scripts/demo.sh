#!/usr/bin/env bash
# The main job: install what is missing, start the local stack, run `echo hello from sbx` in the
# demo image and stream its output through the SSE endpoint. The stack stays up afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/up.sh
API_PORT=${SBX_API_PORT:-8080}
REGISTRY_ADDR=${SBX_REGISTRY_ADDR:-127.0.0.1:5000}
npx --no-install tsx infra/scripts/run-job.ts --api "http://127.0.0.1:$API_PORT" --image "$REGISTRY_ADDR/demo/busybox:latest" -- echo hello from sbx
echo "sbx: the stack is still running at http://127.0.0.1:$API_PORT — try: curl -s -XPOST -H 'content-type: application/json' -d '{\"image\":\"$REGISTRY_ADDR/demo/busybox:latest\",\"command\":[\"uname\",\"-a\"]}' 'http://127.0.0.1:$API_PORT/v1/jobs?wait=true'"
echo "sbx: stop it with: npm run down"
