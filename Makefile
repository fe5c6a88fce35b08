# Everything a person wants, by name. `make dev` and `make test` work on a fresh
# machine: they install what they need (infra/install.sh) into .local/.

CARGO ?= cargo

.PHONY: dev test test-console lint fmt install bench bench-scale build fuzz invoke invoke-all start-api start-api-smoke invoke-watch deploy-local clean

## Run the service locally with demo data on http://127.0.0.1:$${PORT:-3000}.
dev:
	infra/dev.sh

## Every check and test: format, lints, unit and integration tests, then the
## console's browser tests.
test: install lint
	$(CARGO) build --workspace
	$(CARGO) test --workspace -- --test-threads 4
	infra/test-console.sh

## The console in Debian's chromium against a `make dev` stack on free ports:
## every screen, axe-core, screenshots in target/console-screenshots/.
test-console: install
	$(CARGO) build --workspace
	infra/test-console.sh

## Formatting and clippy, warnings as errors; the dependencies' bans, licenses
## and sources (cargo deny, deny.toml: its advisories need the RustSec database
## from GitHub, which cannot be fetched here, so they are not checked);
## template.yaml and openapi.yaml: cfn-lint, sam validate --lint, openapi-spec-validator (infra/lint-template.sh,
## offline; installs the SAM CLI venv .local/sam-venv on first use); the
## console: its API types are openapi.yaml's (openapi-typescript), and tsc.
lint: install
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	infra/install.sh deny
	.local/cargo-deny/bin/cargo-deny --offline check bans licenses sources
	infra/lint-template.sh
	cd console && npm run --silent check

fmt:
	$(CARGO) fmt --all

## DynamoDB Local, the Python venv (localstripe, moto) and the launcher; cargo-deny
## (`infra/install.sh deny`) comes with the first `make lint`.
install:
	infra/install.sh

## Latency, DynamoDB round trips, a Stripe webhook's cost per event and list cost by table size.
bench: install
	$(CARGO) run --release -p billing-tests --bin bench

## Listings at 100,000 customers and 16 concurrent writers; the reconciliation's
## peak memory at 10,000 and 100,000 Stripe subscriptions; a customer's audit trail
## pages at 10,000 entries (minutes; not in `make test`).
bench-scale: install
	DYNAMODB_LOCAL_HEAP=6g $(CARGO) run --release -p billing-tests --bin bench -- --scale 100000
	DYNAMODB_LOCAL_HEAP=6g $(CARGO) run --release -p billing-tests --bin bench -- --reconcile 10000,100000
	$(CARGO) run --release -p billing-tests --bin bench -- --audit 10000

## schemathesis against the local server (billing-dev serve, DynamoDB Local,
## localstripe, demo data): every check, >= 1,000 cases, fixed seed (infra/fuzz.sh).
fuzz: install
	infra/fuzz.sh

## sam build: every function for arm64 with cargo-lambda and zig, installed on
## first use (cargo-lambda: its prebuilt PyPI wheel, pinned, pip-installed into a
## venv in ~/.cache/billing-admin, seconds once); prints the artifact sizes
## (infra/build.sh). Needs no AWS account.
build:
	infra/build.sh

## sam local invoke FN's function (x86_64 artifacts of the same sam build path,
## Docker, the local stack with demo data); EVENT defaults to events/FN.json.
## docs/local-lambda.md.
invoke: install
	@test -n "$(FN)" || { echo "usage: make invoke FN=<function> [EVENT=events/<file>.json]" >&2; exit 2; }
	infra/sam-local.sh invoke "$(FN)" "$(EVENT)"

## Every file of events/ through sam local invoke, each answer checked (CI).
invoke-all: install
	infra/sam-local.sh invoke-all

## sam local start-api on http://127.0.0.1:$${PORT:-3000} with the local stack.
start-api: install
	infra/sam-local.sh start-api

## Black-box requests through sam local start-api, compared with billing-dev serve (CI).
start-api-smoke: install
	infra/sam-local.sh smoke

## The Docker-free path: cargo lambda watch runs get-customer, cargo lambda invoke
## --data-file sends it events/get-customer.json; a 200 is required (CI).
invoke-watch: install
	infra/sam-local.sh watch

## Deploy rehearsal: template.yaml transformed (aws-sam-translator), created in
## moto's CloudFormation, the stack checked against the template (CI).
deploy-local: install
	infra/deploy-local.sh

clean:
	$(CARGO) clean
	rm -rf .local .aws-sam
