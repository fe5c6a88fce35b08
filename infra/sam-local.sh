#!/usr/bin/env bash
# `make invoke`, `make invoke-all`, `make start-api` (and its smoke test): the
# functions' x86_64 artifacts, built through the same sam build / cargo-lambda path
# as `make build` with each function's own features (infra/build.sh --arch x86_64
# --debug; built once, incremental afterwards), run by `sam local` against the
# local stack (infra/sam_local.py), with Docker (infra/with-docker.sh).
# Usage: infra/sam-local.sh invoke FN [EVENT] | invoke-all | start-api [PORT] | smoke | watch
#   (watch: the Docker-free path, cargo lambda watch + invoke; no Docker)
#   SAM_LOCAL_RELEASE=1: release artifacts instead (cargo's release profile, as
#   deployed; minutes more to build), e.g. for the Init Duration figures.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf 'sam-local.sh: %s\n' "$*" >&2; }

start=$SECONDS
infra/install.sh sam
# billing-dev (seeding, tokens): the workspace build `make dev` and `make test` make.
cargo build --quiet --workspace
if [[ ${1:-} == watch ]]; then
  # No Docker, no sam build: cargo lambda watch builds and runs the function on
  # the host (cargo-lambda from infra/build.sh's cache, installed there first).
  [[ -x ${BILLING_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billing-admin}/cargo-lambda-1.9.2-pypi/bin/cargo-lambda ]] \
    || infra/build.sh --arch x86_64 --debug --parallel
  exec "$root/.local/sam-venv/bin/python" "$root/infra/sam_local.py" "$@"
fi
mode=(--debug)
[[ -z ${SAM_LOCAL_RELEASE:-} ]] || mode=()
# Built once: rebuilt only when a source, the template or the mode changed since.
stamp=.aws-sam/build-x86_64/.built
want=debug; [[ -z ${SAM_LOCAL_RELEASE:-} ]] || want=release
if [[ -f $stamp && "$(<"$stamp")" == "$want" ]] \
  && [[ -z "$(find functions shared Cargo.toml Cargo.lock template.yaml infra/build.sh -newer "$stamp" -print -quit)" ]]; then
  log "x86_64 artifacts up to date ($want)"
else
  infra/build.sh --arch x86_64 "${mode[@]}" --parallel
  printf '%s\n' "$want" >"$stamp"
  log "built in $((SECONDS - start)) s"
fi
exec infra/with-docker.sh "$root/.local/sam-venv/bin/python" "$root/infra/sam_local.py" "$@"
