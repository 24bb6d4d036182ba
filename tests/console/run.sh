#!/usr/bin/env bash
# End-to-end tests of the admin console in Debian's Chromium with
# playwright-core: installs Chromium when missing (apt-get), the npm
# packages (npm ci), checks the vendored uPlot against npm's, builds the
# example servers with the console, runs `node --test`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if ! command -v chromium >/dev/null 2>&1; then
  echo "console e2e: installing chromium (apt-get)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  timeout 600 $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 900 $SUDO apt-get install -y -qq chromium >/dev/null
fi

cd "$here"
timeout 300 npm ci --no-audit --no-fund --loglevel=error

# The vendored chart library is npm's file, byte for byte.
for f in uPlot.iife.min.js uPlot.min.css; do
  cmp "node_modules/uplot/dist/$f" "$repo/console/vendor/$f"
done
cmp node_modules/uplot/LICENSE "$repo/console/vendor/uPlot.LICENSE"

cd "$repo"
cargo build --examples --all-features
cd "$here"
timeout 600 node --test --test-concurrency=1 --test-timeout=240000 e2e/
# The same walks against the actix-web example server (screenshots come
# from the axum pass).
KEYWARD_CONSOLE_EXAMPLE=actix_server timeout 900 node --test --test-concurrency=1 --test-timeout=240000 \
  e2e/console.test.js e2e/host_login.test.js e2e/plane.test.js
