#!/usr/bin/env bash
# `make run`: four mock providers (one down) and Envoy with the filter, whose config
# `model-workers envoy` generates from envoy/demo-spicepod.yaml. Ctrl-C stops everything.
# `envoy/run-demo.sh --check`: only generate the config and have Envoy validate it.
set -euo pipefail
cd "$(dirname "$0")/.."

CLI=${MODEL_WORKERS_CLI:-target/release/model-workers}
MOCK=target/debug/mock-provider
ENVOY=${ENVOY_BIN:-.venv/bin/envoy}
WASM=${MODEL_WORKERS_WASM:-$PWD/target/wasm32-wasip1/release/model_workers.wasm}
CONFIG=${DEMO_CONFIG:-target/demo-envoy.yaml}
PORT=10000
ADMIN=9901
LOG=target/demo-envoy.log

# The Envoy config, from the Spice file. --cluster sends each demo cluster to its mock
# provider; --env writes the demo key into the config (demos only: use the host's environment,
# host_env_keys, for real keys).
"$CLI" envoy envoy/demo-spicepod.yaml \
  --listen 127.0.0.1:$PORT --admin 127.0.0.1:$ADMIN --wasm "$WASM" \
  --cluster backend_a=127.0.0.1:18081 --cluster backend_b=127.0.0.1:18082 \
  --cluster backend_c=127.0.0.1:18083 --cluster backend_down=127.0.0.1:18084 \
  --env DEMO_OPENAI_KEY=sk-demo-not-a-real-key --env DEMO_ANTHROPIC_KEY=sk-ant-demo-not-a-real-key \
  -o "$CONFIG"

if [ "${1:-}" = "--check" ]; then
  "$ENVOY" --mode validate -c "$CONFIG" --disable-hot-restart -l warn
  exit
fi

for p in 18081 18082 18083 18084 $PORT $ADMIN; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use on 127.0.0.1; stop whatever listens there (a previous make run?)" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping mock providers and Envoy"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$MOCK" --name backend_a --listen 127.0.0.1:18081 --chunk-delay-ms 300 >/dev/null & pids+=($!)
"$MOCK" --name backend_b --listen 127.0.0.1:18082 --chunk-delay-ms 300 >/dev/null & pids+=($!)
"$MOCK" --name backend_c --listen 127.0.0.1:18083 >/dev/null & pids+=($!)
"$MOCK" --name backend_down --listen 127.0.0.1:18084 --status 503 --retry-after 2 >/dev/null & pids+=($!)

"$ENVOY" -c "$CONFIG" --concurrency 2 --disable-hot-restart -l warn --component-log-level wasm:info >"$LOG" 2>&1 & pids+=($!)

for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/ready" 2>/dev/null)" = 200 ]; then break; fi
  if ! kill -0 "${pids[-1]}" 2>/dev/null; then echo "Envoy exited; its log ($LOG):" >&2; tail -n 30 "$LOG" >&2; exit 1; fi
  sleep 0.1
done

cat <<MSG

model-workers is running: Envoy on http://127.0.0.1:$PORT (admin http://127.0.0.1:$ADMIN), log in $LOG.
Envoy's config: $CONFIG, generated from envoy/demo-spicepod.yaml by \`model-workers envoy\`.
Mock providers: backend_a :18081, backend_b :18082, backend_c :18083, backend_down :18084 (always 503).

Round robin (foo, bar in turn; -i shows x-model-workers-* and x-mock-backend headers):
  curl -si http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"round-robin","messages":[{"role":"user","content":"hi"}]}' | grep -i '^x-'

Fallback (primary is down: watch x-model-workers-attempts: primary=503,foo=200):
  curl -si http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"fallback","messages":[{"role":"user","content":"hi"}]}' | grep -i '^x-'

Weighted 4:1 (ten requests: eight foo, two bar):
  for i in \$(seq 10); do curl -s http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"weighted","messages":[]}' -o /dev/null -D - | grep -i '^x-model-workers-model'; done

Streaming (chunks arrive 300 ms apart, unbuffered):
  curl -sN http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"round-robin","stream":true,"messages":[{"role":"user","content":"hi"}]}'

The provider key is injected (the mock echoes what it received):
  curl -s http://127.0.0.1:$PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"foo","messages":[]}' | python3 -m json.tool | grep authorization

Models and workers:   curl -s http://127.0.0.1:$PORT/v1/models
Filter metrics:       curl -s http://127.0.0.1:$ADMIN/stats/prometheus | grep model_workers

Press Ctrl-C to stop.
MSG
wait "${pids[-1]}"
