#!/usr/bin/env bash
# The console's browser tests (console/test/browser.mjs): Debian's chromium,
# driven by playwright-core, against a `make dev` stack (infra/dev.sh) the test
# starts on free loopback ports and stops by PID. Screenshots and the axe-core
# results go to target/console-screenshots/. Needs `cargo build --workspace`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
infra/install.sh browser
started=$SECONDS
node console/test/browser.mjs
echo "test-console.sh: browser tests took $((SECONDS - started)) s" >&2
