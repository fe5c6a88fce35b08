#!/usr/bin/env bash
# Lints the deployment descriptions offline:
#   template.yaml  cfn-lint (errors, warnings and informational findings)
#   template.yaml  sam validate --lint (the SAM CLI's own lint: the template
#                  transformed by the SAM translator, then cfn-lint)
#   openapi.yaml   openapi-spec-validator (OpenAPI 3.1 structure and schemas)
# cfn-lint and openapi-spec-validator come from the project venv (.local/venv,
# pinned in infra/requirements.txt); the SAM CLI from its own venv
# (.local/sam-venv, pinned in infra/requirements-sam.txt, with the same cfn-lint
# version: checked below). infra/install.sh creates or updates both (a second run
# takes well under a second). No network: SAM_CLI_TELEMETRY=0, and the SAM CLI's
# weekly version check fails silently offline.
# Exits non-zero on any finding.
# Usage: infra/lint-template.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.local/venv"
sam_venv="$root/.local/sam-venv"

"$root/infra/install.sh" sam

status=0

cfn_lint_version="$("$venv/bin/cfn-lint" --version | awk '{print $2}')"
echo "cfn-lint $cfn_lint_version: template.yaml" >&2
# --include-checks I: informational findings count too, so the template stays clean.
if ! "$venv/bin/cfn-lint" --include-checks I -- "$root/template.yaml"; then
  echo "lint-template.sh: cfn-lint reported findings in template.yaml" >&2
  status=1
fi

sam_version="$("$sam_venv/bin/python" -I -c 'import samcli; print(samcli.__version__)')"
sam_cfn_lint_version="$("$sam_venv/bin/cfn-lint" --version | awk '{print $2}')"
if [[ $sam_cfn_lint_version != "$cfn_lint_version" ]]; then
  echo "lint-template.sh: cfn-lint $sam_cfn_lint_version in .local/sam-venv but $cfn_lint_version in .local/venv;" \
    "pin the same version in infra/requirements-sam.txt and infra/requirements.txt" >&2
  status=1
fi
echo "sam validate --lint (SAM CLI $sam_version, cfn-lint $sam_cfn_lint_version): template.yaml" >&2
# A region for the SAM CLI's boto3 session (no call is made); telemetry off.
# --lint: cfn-lint only; plain `sam validate` would ask IAM for managed policies.
if ! (cd "$root" && SAM_CLI_TELEMETRY=0 AWS_REGION="${AWS_REGION:-us-east-1}" \
  AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}" \
  "$sam_venv/bin/sam" validate --lint --template-file "$root/template.yaml"); then
  echo "lint-template.sh: sam validate --lint reported findings in template.yaml" >&2
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
