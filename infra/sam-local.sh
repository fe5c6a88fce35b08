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
cargo build --quiet -p billing-dev
mode=(--debug)
[[ -z ${SAM_LOCAL_RELEASE:-} ]] || mode=()
infra/build.sh --arch x86_64 "${mode[@]}" --parallel
log "built in $((SECONDS - start)) s"
if [[ ${1:-} == watch ]]; then
  # No Docker: cargo lambda watch runs the function on the host.
  exec "$root/.local/sam-venv/bin/python" "$root/infra/sam_local.py" "$@"
fi
exec infra/with-docker.sh "$root/.local/sam-venv/bin/python" "$root/infra/sam_local.py" "$@"
