#!/usr/bin/env bash
# Runs moto's AWS mock server (Secrets Manager, ...) in the foreground on
# 127.0.0.1:PORT only. exec's moto_server, so this script's PID is the
# server's PID; kill it to stop the server. State is in memory only.
# Usage: infra/run-moto.sh PORT   (after infra/install.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.local/venv"

port="${1:-}"
if [[ $# -ne 1 || ! $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  echo "usage: $0 PORT  (1-65535)" >&2
  exit 2
fi
if [[ ! -x $venv/bin/moto_server ]]; then
  echo "$0: moto is not installed; run infra/install.sh first" >&2
  exit 1
fi

exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$((10#$port))"
