#!/usr/bin/env bash
# CTest entry for the browser tests: run.sh FACEVAULT_BINARY ARTIFACTS_DIR
# Exit 77 (CTest: skipped) with a reason when chromium, node, the npm package, the models or
# the sample photos are missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
artifacts=$2
shared=${FACEVAULT_SHARED:-$here/../../../shared}
samples=$shared/data/samples/face-api-js/images
chromium=${CHROMIUM:-/usr/bin/chromium}
skip() { echo "SKIPPED: $*"; exit 77; }
command -v node >/dev/null || skip "node is not installed (scripts/setup-deps.sh)"
[ -x "$chromium" ] || skip "$chromium is missing (apt-get install chromium; scripts/setup-deps.sh)"
[ -d "$samples" ] || skip "no sample photos at $samples (README: Test data)"
models=${FACEVAULT_MODEL_DIR:-$HOME/.cache/facevault/models}
[ -d "$models" ] || skip "models not fetched: run make models"
if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) || skip "npm ci failed in tests/browser (no network?): playwright-core missing"
fi
exec node "$here/ui_test.mjs" "$bin" "$samples" "$artifacts"
