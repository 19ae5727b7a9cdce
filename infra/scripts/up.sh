#!/usr/bin/env bash
# Starts the local sbx stack in the background and returns once it is ready:
#   a private redis-server, Debian's Distribution registry seeded with the demo image,
#   the API and one worker, run with node from the production build (dist/: `npm run build`, done
#   here first when dist/ is missing or older than a source). Running it again leaves running parts alone.
# Env: SBX_API_PORT (8080), SBX_REGISTRY_ADDR (127.0.0.1:5000), SBX_DEV_REDIS_PORT (6399),
#      SBX_STATE_DIR (.sbx/state: image cache, removed by `down`), SBX_WORKER_SLOTS,
#      SBX_SECRETS_KEY (default: generated once into .sbx/secrets-key),
#      SBX_EGRESS_ALLOW (what the worker may reach beside the local registry, which is always allowed).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/install-deps.sh
# The API and the worker run the production build (node dist/...): built when missing or older than
# a source it is made from (npm run build).
stamp=dist/.build-stamp
if [[ ! -f $stamp ]] || [[ -n "$(find core/src api/src worker/src client/src cli native/index.ts native/build/Release \
    tsconfig.json tsconfig.build.json package.json infra/scripts/build.sh -newer "$stamp" ! -name '*.test.ts' -print -quit 2>/dev/null)" ]]; then
  echo "sbx: building dist/ (npm run build)" >&2
  bash infra/scripts/build.sh
  rebuilt=1
fi

API_PORT=${SBX_API_PORT:-8080}
REGISTRY_ADDR=${SBX_REGISTRY_ADDR:-127.0.0.1:5000}
REDIS_PORT=${SBX_DEV_REDIS_PORT:-6399}
HERE=$(pwd)
RUN=$HERE/.sbx/run
LOGS=$HERE/.sbx/logs
mkdir -p "$RUN" "$LOGS" "$HERE/.sbx/registry"

alive() { [[ -f $RUN/$1.pid ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start NAME CMD... : run detached in its own session, log to .sbx/logs/NAME.log
start() {
  local name=$1; shift
  if alive "$name"; then echo "sbx: $name already running (pid $(cat "$RUN/$name.pid"))"; kept+=" $name"; return; fi
  setsid nohup "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 300); do
    if eval "$check" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "sbx: $what did not come up; see $LOGS" >&2
  exit 1
}

start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --protected-mode yes
wait_for "redis on 127.0.0.1:$REDIS_PORT" "redis-cli -p $REDIS_PORT ping | grep -q PONG"

cat >"$RUN/registry.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $HERE/.sbx/registry }
  delete: { enabled: true }
http:
  addr: $REGISTRY_ADDR
YML
start registry docker-registry serve "$RUN/registry.yml"
wait_for "registry on $REGISTRY_ADDR" "curl -sf http://$REGISTRY_ADDR/v2/"
npx --no-install tsx test/fixtures/build-images.ts --registry "$REGISTRY_ADDR" >"$LOGS/fixtures.log" 2>&1 || { cat "$LOGS/fixtures.log" >&2; exit 1; }

# A job's registryAuth is encrypted at rest with a key the API and the worker share: made once
# into .sbx/ (0600, removed by `down` with the Redis data it protects), reused by every `up`.
KEY_FILE=$HERE/.sbx/secrets-key
if [[ ! -s $KEY_FILE ]]; then (umask 077 && openssl rand -base64 32 >"$KEY_FILE.tmp" && mv "$KEY_FILE.tmp" "$KEY_FILE"); fi
export SBX_SECRETS_KEY=${SBX_SECRETS_KEY:-$(cat "$KEY_FILE")}
export SBX_REDIS_URL=redis://127.0.0.1:$REDIS_PORT SBX_API_PORT=$API_PORT SBX_WORKER_ID=${SBX_WORKER_ID:-local/1} SBX_STATE_DIR=${SBX_STATE_DIR:-$HERE/.sbx/state}
start api node dist/api/src/main.js
wait_for "API on 127.0.0.1:$API_PORT" "curl -sf http://127.0.0.1:$API_PORT/readyz"
# The worker refuses non-public addresses (egress policy); the local registry is on loopback: allow it.
start worker env SBX_EGRESS_ALLOW="$REGISTRY_ADDR${SBX_EGRESS_ALLOW:+,$SBX_EGRESS_ALLOW}" node --initial-old-space-size=128 dist/worker/src/main.js
wait_for "a worker" "curl -sf http://127.0.0.1:$API_PORT/v1/workers | grep -q '\"id\"'" || true
if ! alive worker; then echo "sbx: the worker stopped:" >&2; tail -n 20 "$LOGS/worker.log" >&2; exit 1; fi

echo "sbx: up. API http://127.0.0.1:$API_PORT (docs /docs), registry http://$REGISTRY_ADDR, demo image $REGISTRY_ADDR/demo/busybox:latest"
echo "sbx: logs in $LOGS; stop with: npm run down"
if [[ -n ${rebuilt:-} && ${kept:-} =~ api|worker ]]; then echo "sbx: dist/ was rebuilt, but the API and worker that were already running still run the previous build; npm run down && npm run up restarts them"; fi
