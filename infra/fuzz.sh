#!/usr/bin/env bash
# `make fuzz`: property-based tests of the running API against openapi.yaml.
# Installs schemathesis (pinned, infra/requirements-fuzz.txt, into the project
# venv), starts DynamoDB Local and localstripe on free loopback ports, creates and
# seeds a table with the demo data, mints an admin token, serves the API with
# `billing-dev serve`, and runs `schemathesis run` over the six operations with
# every check, a fixed seed and FUZZ_MAX_EXAMPLES cases per operation and phase.
# Prints the number of generated cases and every failure (with a curl line that
# reproduces it), stops everything it started by PID, and exits non-zero on any
# failure. Logs and reports: target/fuzz/.
# Usage: infra/fuzz.sh   (FUZZ_MAX_EXAMPLES=200, FUZZ_SEED=20240601, FUZZ_WORKERS=2)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

max_examples="${FUZZ_MAX_EXAMPLES:-200}"
seed="${FUZZ_SEED:-20240601}"
workers="${FUZZ_WORKERS:-2}"
min_cases="${FUZZ_MIN_CASES:-1000}"
out="${CARGO_TARGET_DIR:-$root/target}/fuzz"
venv="$root/.local/venv"

log() { printf 'fuzz.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for_port PORT NAME: up to 60 s for 127.0.0.1:PORT to accept connections.
wait_for_port() {
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$2 did not listen on 127.0.0.1:$1 within 60 s (log: $out/$2.log)"
}

# Three distinct free loopback ports (bound, read and released by the kernel).
free_ports() {
  "$venv/bin/python" -I - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

infra/install.sh fuzz
log "building billing-dev"
cargo build --quiet -p billing-dev
cli="${CARGO_TARGET_DIR:-$root/target}/debug/billing-dev"

rm -rf "$out"
mkdir -p "$out"

pids=()
stop() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r ddb_port stripe_port api_port < <(free_ports)
# Only what billing-dev reads; everything else keeps its local default (local.rs).
export TABLE_NAME=billing-fuzz
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export STRIPE_API_BASE="http://127.0.0.1:$stripe_port"
export RUST_LOG="${RUST_LOG:-warn}"
unset PORT

infra/run-dynamodb-local.sh "$ddb_port" >"$out/dynamodb-local.log" 2>&1 &
pids+=("$!")
infra/run-localstripe.sh "$stripe_port" >"$out/localstripe.log" 2>&1 &
pids+=("$!")
wait_for_port "$ddb_port" dynamodb-local
wait_for_port "$stripe_port" localstripe

"$cli" create-table 2>>"$out/billing-dev.log"
"$cli" seed --demo 2>>"$out/billing-dev.log"
token="$("$cli" token --sub 5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e --role billing_admin --expires-in 3600)"

"$cli" serve --port "$api_port" >"$out/serve.log" 2>&1 &
pids+=("$!")
wait_for_port "$api_port" serve

base="http://127.0.0.1:$api_port/api/billing/v1/admin"
log "schemathesis against $base: seed $seed, $max_examples examples per operation, every check"
start=$SECONDS
status=0
# --checks all: every check, ignored_auth included (auth is checked before anything
# else). --generation-database none: no .hypothesis/ in the work tree, and a run
# depends on --seed only. --suppress-health-check too_slow: two cores shared with
# DynamoDB Local; a slow case is not a finding.
"$venv/bin/schemathesis" --no-color run "$root/openapi.yaml" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers "$workers" \
  --generation-database none \
  --suppress-health-check too_slow \
  --request-timeout 30 \
  --report junit,ndjson --report-dir "$out" \
  --output-truncate false \
  2>&1 | tee "$out/schemathesis.txt" || status=$?
elapsed=$((SECONDS - start))

# The ndjson event stream counts what ran: every case of every phase.
cases="$("$venv/bin/python" -I - "$out" <<'PY'
import json, pathlib, sys
total = 0
for path in pathlib.Path(sys.argv[1]).glob("*.ndjson"):
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            total += len(event["ScenarioFinished"].get("recorder", {}).get("cases", {}))
print(total)
PY
)"
log "generated $cases test cases in ${elapsed} s (report: ${out#"$root"/})"
if [[ $status -ne 0 ]]; then
  log "schemathesis found failures (above; reproduce with the curl lines)"
  exit "$status"
fi
if ((cases < min_cases)); then
  die "only $cases test cases ran, fewer than $min_cases"
fi
log "no failures"
