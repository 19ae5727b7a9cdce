#!/usr/bin/env bash
# Stops what `npm run up` started (worker and API first, so jobs end cleanly) and removes its files.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=.sbx/run
for name in worker api registry redis; do
  pidfile=$RUN/$name.pid
  [[ -f $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
rm -rf .sbx
echo "sbx: down"
