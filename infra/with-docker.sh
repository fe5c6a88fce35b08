#!/usr/bin/env bash
# Runs COMMAND with a Docker daemon and the Lambda base image that `sam local`
# needs, and leaves the machine as it found it:
#   - the Docker CLI and daemon: Debian's `docker.io` (apt-get) when `dockerd`
#     is missing;
#   - a daemon: the running one when `docker info` answers, else `dockerd`
#     started here (unix socket only, no TCP listener) and stopped by its PID
#     when COMMAND ends;
#   - the base image, exported to COMMAND as LAMBDA_BASE_IMAGE: the official
#     public.ecr.aws/lambda/provided:al2023 when it is present or can be pulled
#     (one try, 60 s), else the stand-in `billing-admin/provided-standin:al2023`,
#     built here once from Debian packages (docs/local-lambda.md).
# Usage: infra/with-docker.sh COMMAND [ARG...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
official=public.ecr.aws/lambda/provided:al2023
standin=billing-admin/provided-standin:al2023

log() { printf 'with-docker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ $# -ge 1 ]] || die "usage: $0 COMMAND [ARG...]"

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# ---- Docker from Debian ---------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io (Debian)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io >&2 || die "apt-get install docker.io failed"
fi

# ---- A daemon ---------------------------------------------------------------------
dockerd_pid=""
cleanup() {
  local status=$?
  if [[ -n $dockerd_pid ]]; then
    log "stopping the dockerd it started (PID $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! timeout 10 docker info >/dev/null 2>&1; then
  [[ $(id -u) -eq 0 ]] || die "no Docker daemon answers and starting one needs root"
  log "starting dockerd (log: target/dockerd.log)"
  mkdir -p "$root/target"
  # No TCP listener: the default unix socket only.
  dockerd --host unix:///var/run/docker.sock >"$root/target/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 300); do
    timeout 5 docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || die "dockerd exited (see target/dockerd.log)"
    sleep 0.2
  done
  timeout 5 docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s (see target/dockerd.log)"
fi

# ---- The base image -----------------------------------------------------------------
if docker image inspect "$official" >/dev/null 2>&1 \
  || timeout 60 docker pull -q "$official" >/dev/null 2>&1; then
  export LAMBDA_BASE_IMAGE="$official"
else
  if ! docker image inspect "$standin" >/dev/null 2>&1; then
    log "$official cannot be pulled here: building the stand-in $standin from Debian packages"
    "$root/infra/standin-image.sh" "$standin"
  fi
  export LAMBDA_BASE_IMAGE="$standin"
fi
log "base image: $LAMBDA_BASE_IMAGE"

# In the background, so that a SIGTERM reaches this script at once (bash runs a
# trap only after the foreground child ends) and is passed on to COMMAND.
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 143' TERM
trap 'kill -INT "$child" 2>/dev/null || true; wait "$child" || true; exit 130' INT
status=0
wait "$child" || status=$?
exit "$status"
