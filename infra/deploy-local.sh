#!/usr/bin/env bash
# `make deploy-local`: a deploy rehearsal of template.yaml in moto's CloudFormation
# (infra/deploy_local.py): moto started on a free 127.0.0.1 port (MOTO_PORT to
# choose) and stopped by its PID. Needs built functions (make build, or the x86_64
# build of make invoke-all): their bootstraps are the stack's code.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
infra/install.sh sam
port="${MOTO_PORT:-$("$root/.local/sam-venv/bin/python" -I -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
mkdir -p target
infra/run-moto.sh "$port" >"$root/target/deploy-local-moto.log" 2>&1 &
moto_pid=$!
trap 'kill -TERM "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$moto_pid" 2>/dev/null || { echo "deploy-local.sh: moto exited (target/deploy-local-moto.log)" >&2; exit 1; }
  sleep 0.1
done
"$root/.local/sam-venv/bin/python" -I "$root/infra/deploy_local.py" "http://127.0.0.1:$port"
