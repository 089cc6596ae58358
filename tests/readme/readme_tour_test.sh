#!/usr/bin/env bash
# Runs the README's five-minute tour (every ```sh block between <!-- tour --> and
# <!-- /tour -->, in order, as one bash script) in a scratch folder whose build/ is this
# build, and checks what a newcomer should see: the same person found by 1:1, by the CLI
# search, over HTTP and from Python, and a policy refusal raised as its Python exception.
#   readme_tour_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
skip() { echo "SKIP: $*"; exit 77; }
photos=~/.cache/facevault/demo-photos/@vladmandic/face-api@1.7.15/demo
[ -f "$photos/sample1.jpg" ] || skip "the demo photos are not fetched (make models)"
[ -d "$build/python/facevault" ] || skip "the Python module is not built in $build (sanitizer builds have none)"
for c in jq curl /usr/bin/python3; do command -v "$c" >/dev/null || skip "$c is not installed"; done

scratch=$(mktemp -d)
server_pids() { pgrep -f "facevault serve --listen 127.0.0.1:8090" || true; }
cleanup() {
  for p in $(server_pids); do kill "$p" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT
[ -z "$(server_pids)" ] || skip "port 8090 is taken by another tour"

awk '/^<!-- tour -->$/{t=1; next} /^<!-- \/tour -->$/{t=0} t && /^```sh$/{b=1; next} t && /^```$/{b=0; next} b' \
  "$src/README.md" > "$scratch/tour.sh"
blocks=$(awk '/^<!-- tour -->$/{t=1} /^<!-- \/tour -->$/{t=0} t && /^```sh$/{n++} END{print n+0}' "$src/README.md")
[ "$blocks" -ge 4 ] || { echo "FAIL: the tour has $blocks shell blocks, expected the CLI, vault, HTTP and Python parts"; exit 1; }
ln -s "$(cd "$build" && pwd)" "$scratch/build"

# Debian's python3 (the module is built for it), whatever else is first on the PATH.
out=$(cd "$scratch" && env -u FACEVAULT_MASTER_KEY PATH="/usr/bin:$PATH" timeout 600 bash -euo pipefail tour.sh 2>"$scratch/err") || {
  echo "FAIL: the tour stopped with an error"; echo "--- stdout"; echo "$out"; echo "--- stderr"; cat "$scratch/err"; exit 1; }
echo "$out"

fails=0
expect() {  # description, pattern
  if grep -qE -- "$2" <<<"$out"; then echo "ok: $1"; else echo "FAIL: $1 (no line matching $2)"; fails=$((fails + 1)); fi
}
expect "detect prints the faces as JSON" '^\{"box":\[.*"score":'
expect "verify finds the same person in sample1 and sample3" 'SAME person'
expect "the CLI search finds alice" 'alice'
expect "the HTTP search finds alice" '"subject":"alice"'
expect "Python's verify says same" "'same': True"
expect "the Python search finds alice, for human review" "\('alice', 0\.[0-9]+\).*human review"
expect "an investigator may not erase: PermissionDenied" '^refused: .*may not erase'
expect "the audit chain is intact" 'audit chain intact'
expect "the erasure prints its receipt" 'ERASURE RECEIPT'
[ "$fails" -eq 0 ] || exit 1
echo "1 passed, 0 failed"
