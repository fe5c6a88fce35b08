#!/usr/bin/env bash
# `make dev`: installs what is missing, starts DynamoDB Local and localstripe,
# creates and seeds the table (with Stripe customers and subscriptions), serves
# the API on 127.0.0.1:${PORT:-3000} through the Lambdas' handlers, runs the
# stream consumer, prints a demo admin token and a curl example, and stops
# everything it started on Ctrl-C or SIGTERM.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

port="${PORT:-3000}"
ddb_port="${DYNAMODB_PORT:-8000}"
stripe_port="${STRIPE_PORT:-8420}"
export AWS_ENDPOINT_URL_DYNAMODB="${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:$ddb_port}"
export STRIPE_API_BASE="${STRIPE_API_BASE:-http://127.0.0.1:$stripe_port}"
# The Stripe webhook endpoint's secret: the environment's, else the dev default.
export STRIPE_WEBHOOK_SECRET="${STRIPE_WEBHOOK_SECRET:-whsec_billing_dev}"

log() { printf 'make dev: %s\n' "$*" >&2; }

# shellcheck source=infra/procs.sh
. infra/procs.sh
# listen PORT NAME: waits for NAME to listen on 127.0.0.1:PORT, or fails.
listen() { wait_for_port "$1" || { log "$2 did not listen on 127.0.0.1:$1 within 60 s"; return 1; }; }

for p in "$port" "$ddb_port" "$stripe_port"; do
  port_free "$p" || { log "port $p is in use (another make dev?); set PORT / DYNAMODB_PORT / STRIPE_PORT"; exit 1; }
done

infra/install.sh
log "building"
cargo build --workspace --quiet
cli="${CARGO_TARGET_DIR:-$root/target}/debug/billing-dev"

stop_on_exit 'log "stopped"'

log "starting DynamoDB Local on 127.0.0.1:$ddb_port (in memory)"
infra/run-dynamodb-local.sh "$ddb_port" >"$root/target/dynamodb-local.log" 2>&1 &
servers+=("$!")
listen "$ddb_port" "DynamoDB Local"

log "starting localstripe on 127.0.0.1:$stripe_port"
infra/run-localstripe.sh "$stripe_port" >"$root/target/localstripe.log" 2>&1 &
servers+=("$!")
listen "$stripe_port" "localstripe"

"$cli" create-table
"$cli" seed --demo

admin_user="5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e"
list_url="http://127.0.0.1:$port/api/billing/v1/admin/customers?page=1&limit=10&status=active"
if [[ -n ${JWT_JWKS_URL:-} ]]; then
  # Tokens come from that identity provider; the dev key is not trusted. A
  # 12-hour admin API key stands in for a demo token.
  key="$("$cli" api-key --user "$admin_user" --role billing_admin --expires-in 43200)"
  api_key="$(sed -E 's/.*"apiKey":"([^"]+)".*/\1/' <<<"$key")"
  api_secret="$(sed -E 's/.*"apiSecret":"([^"]+)".*/\1/' <<<"$key")"
  console_url="http://127.0.0.1:$port/console/#api-key=$api_key&api-secret=$api_secret"
  credentials="Bearer tokens: from the identity provider at $JWT_JWKS_URL.
Demo admin API key (12 h):
  export API_KEY=$api_key API_SECRET=$api_secret
Try:
  curl -s '$list_url' -H \"api-key: \$API_KEY\" -H \"api-secret: \$API_SECRET\""
else
  token="$("$cli" token --sub "$admin_user" --role billing_admin --expires-in 43200)"
  console_url="http://127.0.0.1:$port/console/#token=$token"
  credentials="Demo admin token (12 h):
  export TOKEN=$token
Try:
  curl -s '$list_url' -H \"Authorization: Bearer \$TOKEN\""
fi

"$cli" consume-stream &
clients+=("$!")
"$cli" serve --port "$port" &
clients+=("$!")
listen "$port" "billing-dev serve"

# localstripe signs and posts its subscription and customer events to the
# webhook, as Stripe would (its /_config/webhooks/{id} endpoint), a second after
# each happens. Seeding puts each subscription in its fixture's status first, so
# the webhook keeps every seeded status, then and for a later `seed --file`.
sleep 2
webhook_url="http://127.0.0.1:$port/api/billing/v1/webhooks/stripe"
curl -sSf -m 5 -X POST "$STRIPE_API_BASE/_config/webhooks/billing-dev" \
  -d "url=$webhook_url" -d "secret=${STRIPE_WEBHOOK_SECRET%%,*}" \
  -d "events[]=customer.subscription.created" -d "events[]=customer.subscription.updated" \
  -d "events[]=customer.subscription.deleted" -d "events[]=customer.subscription.paused" \
  -d "events[]=customer.subscription.resumed" -d "events[]=customer.deleted" >/dev/null
log "localstripe posts its Stripe events to $webhook_url"

cat <<MSG

Ready: http://127.0.0.1:$port/api/billing/v1/admin  (Ctrl-C stops everything)
Console (signs in with the demo credentials below; the page drops them from the URL):
  $console_url
$credentials
Stripe (localstripe): $STRIPE_API_BASE/v1/customers (key sk_test_local); deleting a customer
deletes its Stripe customer, which cancels its subscription; the stream consumer then
logs customer.deleted. Changing a subscription in localstripe (e.g. curl -X DELETE
-u sk_test_local: $STRIPE_API_BASE/v1/subscriptions/SUB_ID) reaches the listings through
the webhook within seconds. Platform events: $cli send-event customer.created --detail '{...}'. Metrics (CloudWatch EMF) are the lines with "_aws" in this log.

MSG

# Run until a child exits or a signal arrives; the EXIT trap stops the rest.
wait -n "${servers[@]}" "${clients[@]}"
