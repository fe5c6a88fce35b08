# Everything a person wants, by name. `make dev` and `make test` work on a fresh
# machine: they install what they need (infra/install.sh) into .local/.

CARGO ?= cargo

.PHONY: dev test lint fmt install bench build clean

## Run the service locally with demo data on http://127.0.0.1:$${PORT:-3000}.
dev:
	infra/dev.sh

## Every check and test: format, lints, unit and integration tests.
test: install lint
	$(CARGO) build --workspace
	$(CARGO) test --workspace -- --test-threads 4

## Formatting and clippy, warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## DynamoDB Local, the Python venv (localstripe, moto) and the launcher.
install:
	infra/install.sh

## Latency, DynamoDB round trips and list cost by table size.
bench: install
	$(CARGO) run --release -p billing-tests --bin bench

## Release binaries of every function.
build:
	$(CARGO) build --workspace --release

clean:
	$(CARGO) clean
	rm -rf .local
