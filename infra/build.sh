#!/usr/bin/env bash
# `make build`: `sam build` of template.yaml (BuildMethod rust-cargolambda, arm64),
# installing what it needs first:
#   SAM CLI + zig   .local/sam-venv (infra/install.sh sam; pinned, PyPI: aws-sam-cli,
#                   ziglang), zig run as `python -m ziglang` by cargo-lambda
#   cargo-lambda    the prebuilt binary cargo-lambda publishes as a wheel on PyPI
#                   (package `cargo-lambda`, exact version and wheel hashes pinned
#                   below), pip-installed into a venv in a cache outside the repo,
#                   shared by every clone:
#                   ${BILLING_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/billing-admin}/cargo-lambda-<version>-pypi
#                   (seconds, once; skipped when present)
#   aarch64-unknown-linux-gnu  the Rust standard library for the target (rustup)
# Then prints each function's artifact (.aws-sam/build/<Function>/bootstrap) with its
# size, checks that each links exactly the billing-shared features its package
# declares (infra/check_features.py), and prints the time each step took.
#
# Each function is built in its own package (CodeUri: functions/<name>), so cargo
# resolves that package's features alone.
#
# --arch x86_64: the same sam build of the same template with only `Architectures`
# changed (.aws-sam/template-x86_64.yaml), into .aws-sam/build-x86_64: the host
# architecture artifacts that `make invoke`, `make invoke-all` and `make start-api`
# run under the Lambda Runtime Interface Emulator (docs/local-lambda.md). --debug:
# SAM_BUILD_MODE=debug (cargo's dev profile; what CI runs: no release build there).
# The deployed artifacts stay arm64 (`make build`).
# Usage: infra/build.sh [--arch arm64|x86_64] [--debug] [SAM-BUILD-OPTION...]
#   (e.g. --parallel, --cached)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

arch=arm64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --arch) arch="${2:-}"; shift 2 ;;
    --debug) export SAM_BUILD_MODE=debug; shift ;;
    *) break ;;
  esac
done
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu; template="$root/template.yaml"; build_dir="$root/.aws-sam/build" ;;
  x86_64) target=x86_64-unknown-linux-gnu; template="$root/.aws-sam/template-x86_64.yaml"; build_dir="$root/.aws-sam/build-x86_64" ;;
  *) echo "build.sh: --arch arm64 or x86_64" >&2; exit 2 ;;
esac

cargo_lambda_version=1.9.2
# sha256 of the cargo-lambda $cargo_lambda_version wheels on PyPI (pip accepts any one):
# manylinux x86_64, manylinux aarch64, macOS arm64, macOS x86_64. To bump: change the
# version and replace these with the new wheels' hashes (pip download
# cargo-lambda==VERSION --no-deps --only-binary=:all: [--platform TAG]; sha256sum).
cargo_lambda_hashes=(
  db2c0b1d53d7ed0055198fd045f641addc91b180b20d794fcf78cc9a9efacb38
  3350315e8b4e88f7134967f51546bf51aa5db37a6d39a17380545362ae27e289
  28e2f698b4e0e367097cd30a8ded8ddc6851dba6f4d53b907b4659a635ae3665
  05efdab4db99fd976f5718b67bb4e72089335d1aab209168f2dfe20907b0e341
)
cache="${BILLING_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/billing-admin}"
# The venv (venv/) and a bin/ holding only the cargo-lambda binary, for PATH.
cargo_lambda_root="$cache/cargo-lambda-$cargo_lambda_version-pypi"
sam_venv="$root/.local/sam-venv"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }
timer_start=$SECONDS
step_start=$SECONDS
step_times=()
step_done() { step_times+=("$(printf '%-40s %5d s' "$1" $((SECONDS - step_start)))"); step_start=$SECONDS; }

need cargo "Rust (rustup) builds the functions"
need rustup "rustup adds the $target standard library"
need flock "util-linux"

# ---- SAM CLI and zig (pinned venv) ------------------------------------------
"$root/infra/install.sh" sam
step_done "install.sh sam"

# ---- cargo-lambda (PyPI wheel, cached outside the repo) ---------------------
# The wheel holds cargo-lambda's prebuilt binary (nothing is compiled). --no-deps:
# its one dependency, ziglang, is .local/sam-venv's (pinned there). Installed in
# place and marked complete last: an interrupted install never looks complete.
mkdir -p "$cache"
if [[ ! -f "$cargo_lambda_root/.complete" ]]; then
  # One install at a time across clones; the loser of a race finds it done.
  exec 8>"$cache/.cargo-lambda.lock"
  flock 8
  if [[ ! -f "$cargo_lambda_root/.complete" ]]; then
    log "cargo-lambda $cargo_lambda_version: pip install of the PyPI wheel into $cargo_lambda_root"
    rm -rf "$cargo_lambda_root"
    mkdir -p "$cargo_lambda_root/bin"
    "$sam_venv/bin/python" -I -m venv "$cargo_lambda_root/venv"
    requirement="cargo-lambda==$cargo_lambda_version"
    for hash in "${cargo_lambda_hashes[@]}"; do requirement+=" --hash=sha256:$hash"; done
    printf '%s\n' "$requirement" >"$cargo_lambda_root/requirements.txt"
    "$cargo_lambda_root/venv/bin/python" -I -m pip install --quiet --disable-pip-version-check \
      --no-input --no-deps --only-binary=:all: --require-hashes \
      -r "$cargo_lambda_root/requirements.txt" \
      || die "cannot install cargo-lambda $cargo_lambda_version from PyPI (see pip above: PyPI unreachable, no wheel for $(uname -sm), or a hash not in cargo_lambda_hashes)"
    ln -s ../venv/bin/cargo-lambda "$cargo_lambda_root/bin/cargo-lambda"
    touch "$cargo_lambda_root/.complete"
  fi
  exec 8>&-
fi
"$cargo_lambda_root/bin/cargo-lambda" lambda --version >/dev/null \
  || die "$cargo_lambda_root/bin/cargo-lambda does not run; remove that directory to reinstall"
step_done "cargo-lambda $cargo_lambda_version"

# ---- zig for cargo-lambda ----------------------------------------------------
# cargo-lambda (cargo-zigbuild) tries `$CARGO_ZIGBUILD_PYTHON_PATH -m ziglang`
# first, then `zig` on PATH: give it both, the venv's Python and a `zig` wrapper.
zig_bin="$root/.local/sam-venv-zig/bin"
mkdir -p "$zig_bin"
cat >"$zig_bin/zig.tmp" <<ZIG
#!/bin/sh
exec "$sam_venv/bin/python" -I -m ziglang "\$@"
ZIG
chmod +x "$zig_bin/zig.tmp"
mv "$zig_bin/zig.tmp" "$zig_bin/zig"
zig_version="$("$zig_bin/zig" version)" || die "zig from .local/sam-venv (ziglang) does not run"
export CARGO_ZIGBUILD_PYTHON_PATH="$sam_venv/bin/python"

# ---- Rust target ---------------------------------------------------------------
# The toolchain rustup picks here (rust-toolchain file, override or default).
toolchain="$(rustup show active-toolchain | awk '{print $1}')"
if ! rustup target list --installed --toolchain "$toolchain" | grep -qx "$target"; then
  log "rustup target add $target (toolchain $toolchain)"
  rustup target add --toolchain "$toolchain" "$target" \
    || die "cannot add the Rust target $target to toolchain $toolchain (rustup needs its download server); the arm64 build needs it"
fi
step_done "rust target $target"

# ---- sam build -----------------------------------------------------------------
# PATH: cargo-lambda for `cargo lambda`, zig, and the SAM CLI's own venv.
export PATH="$cargo_lambda_root/bin:$zig_bin:$sam_venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
# template.yaml generates its log groups and alarms with Fn::ForEach
# (AWS::LanguageExtensions): the SAM CLI expands them only when asked.
export SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS=1
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
log "sam build (SAM CLI $("$sam_venv/bin/python" -I -c 'import samcli; print(samcli.__version__)'), cargo-lambda $cargo_lambda_version, zig $zig_version, $toolchain)"
if [[ $arch == x86_64 ]]; then
  # The same template, one line changed; CodeUri paths made relative to .aws-sam/.
  mkdir -p "$root/.aws-sam"
  "$sam_venv/bin/python" -I - "$root/template.yaml" "$template" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
text, archs = re.subn(r"(?m)^(\s+Architectures: )\[arm64\]$", r"\1[x86_64]", text)
text, uris = re.subn(r"(?m)^(\s+CodeUri: )(functions/[a-z0-9-]+)$", r"\1../\2", text)
if archs != 1 or uris == 0:
    sys.exit(f"template.yaml: expected one `Architectures: [arm64]` and CodeUri: functions/<name> lines, found {archs} and {uris}")
open(sys.argv[2], "w", encoding="utf-8").write(text)
PY
fi
rm -rf "$build_dir"
sam build --template-file "$template" --build-dir "$build_dir" "$@"
step_done "sam build ($arch${SAM_BUILD_MODE:+, $SAM_BUILD_MODE})"

# ---- Report -----------------------------------------------------------------------
printf '\n%-32s %12s  %s\n' "function" "bootstrap" "file" >&2
total_bytes=0
count=0
while IFS= read -r function; do
  artifact="$build_dir/$function/bootstrap"
  [[ -f $artifact ]] || die "no artifact for $function: ${artifact#"$root"/}"
  bytes="$(stat -c %s "$artifact")"
  total_bytes=$((total_bytes + bytes))
  count=$((count + 1))
  printf '%-32s %9.1f MiB  %s\n' "$function" "$(awk "BEGIN{print $bytes/1048576}")" \
    "$(file -b "$artifact" 2>/dev/null | cut -d, -f1-2 || true)" >&2
done < <("$sam_venv/bin/python" -I - "$root/template.yaml" "$root/infra" <<'PY'
import sys
from samtranslator.yaml_helper import yaml_parse
sys.path.insert(0, sys.argv[2])
from template_expand import expand
template = expand(yaml_parse(open(sys.argv[1]).read()))
for name, resource in template.get("Resources", {}).items():
    if resource.get("Type") == "AWS::Serverless::Function" and \
            resource.get("Metadata", {}).get("BuildMethod") == "rust-cargolambda":
        print(name)
PY
)
((count > 0)) || die "template.yaml has no rust-cargolambda function"
printf '%-32s %9.1f MiB\n\n' "total ($count functions)" "$(awk "BEGIN{print $total_bytes/1048576}")" >&2

# ---- Features -------------------------------------------------------------------
"$sam_venv/bin/python" -I "$root/infra/check_features.py" "$root/template.yaml" "$build_dir" >&2 \
  || die "a function links features its package does not declare (above)"
step_done "check_features.py"
for line in "${step_times[@]}"; do log "$line"; done
log "total $((SECONDS - timer_start)) s"
