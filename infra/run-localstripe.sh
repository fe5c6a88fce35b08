#!/usr/bin/env bash
# Runs localstripe (fake Stripe API) in the foreground on 127.0.0.1:PORT only,
# starting empty and keeping its state in memory (see localstripe/serve.py).
# exec's python, so this script's PID is the server's PID; kill it to stop.
# Usage: infra/run-localstripe.sh PORT   (after infra/install.sh)
set -euo pipefail

infra_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$infra_dir")/.local/venv"

port="${1:-}"
if [[ $# -ne 1 || ! $port =~ ^[0-9]{1,5}$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
  echo "usage: $0 PORT  (1-65535)" >&2
  exit 2
fi
if [[ ! -x $venv/bin/python ]] || ! compgen -G "$venv/lib/python3*/site-packages/localstripe/server.py" >/dev/null; then
  echo "$0: localstripe is not installed; run infra/install.sh first" >&2
  exit 1
fi

# -I: ignore PYTHON* env vars and the user site; -u: unbuffered output.
exec "$venv/bin/python" -I -u "$infra_dir/localstripe/serve.py" "$((10#$port))"
