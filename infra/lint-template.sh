#!/usr/bin/env bash
# Lints the deployment descriptions offline:
#   template.yaml  cfn-lint (errors, warnings and informational findings)
#   openapi.yaml   openapi-spec-validator (OpenAPI 3.1 structure and schemas)
# Both tools come from the project venv (.local/venv, pinned in
# infra/requirements.txt); infra/install.sh creates it when it is missing.
# Exits non-zero on any finding.
# Usage: infra/lint-template.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.local/venv"

if [[ ! -x "$venv/bin/cfn-lint" || ! -x "$venv/bin/openapi-spec-validator" ]]; then
  echo "lint-template.sh: project venv missing; running infra/install.sh" >&2
  "$root/infra/install.sh"
fi

status=0

echo "cfn-lint $("$venv/bin/cfn-lint" --version | awk '{print $2}'): template.yaml" >&2
# --include-checks I: informational findings count too, so the template stays clean.
if ! "$venv/bin/cfn-lint" --include-checks I -- "$root/template.yaml"; then
  echo "lint-template.sh: cfn-lint reported findings in template.yaml" >&2
  status=1
fi

echo "openapi-spec-validator: openapi.yaml" >&2
if ! "$venv/bin/openapi-spec-validator" "$root/openapi.yaml"; then
  echo "lint-template.sh: openapi.yaml is not a valid OpenAPI document" >&2
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "lint-template.sh: template.yaml and openapi.yaml are clean" >&2
fi
exit "$status"
