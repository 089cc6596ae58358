#!/usr/bin/env bash
# make_run_test: `make run` from a clone alone. Clones the repository into a scratch folder
# with no ../shared beside it (FACEVAULT_SHARED unset), lays the working tree's files over the
# clone (so uncommitted work is what is tested), runs `make run` there in the background on a
# free loopback port, reusing this build folder and the model cache, then checks /healthz, the
# web UI, and that a search of the printed probe photo with the printed investigator key lists
# the printed expected subject. The server is stopped by its process group in every case.
#   make_run_test.sh SOURCE_DIR BUILD_DIR SANITIZE
set -euo pipefail
src=$1 build=$2 sanitize=${3:-OFF}
skip() { echo "make_run_test: skipped: $*"; exit 77; }
fail() { echo "make_run_test: FAIL: $*" >&2; exit 1; }

case "$sanitize" in ''|OFF|off|0|FALSE|false) ;; *) skip "sanitizer build ($sanitize): make run serves the release binary" ;; esac
for tool in git curl make jq; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
[ -x "$build/facevault" ] || skip "$build/facevault is not built"
# Without the fetched files `make run` would go to the network: CI runs `make models` first.
cache_home=${XDG_CACHE_HOME:-$HOME/.cache}
models=${FACEVAULT_MODEL_DIR:-$cache_home/facevault/models}
photos=${FACEVAULT_DEMO_PHOTOS:-$cache_home/facevault/demo-photos}
while read -r pkg path _; do
  case "$pkg" in ''|\#*) continue ;; esac
  [ -f "$models/$pkg/$path" ] || skip "model $pkg/$path is not in $models (make models)"
done < "$src/models.lock"
while read -r pkg path _; do
  case "$pkg" in ''|\#*) continue ;; esac
  [ -f "$photos/$pkg/$path" ] || skip "demo photo $pkg/$path is not in $photos (make models)"
done < "$src/demo-photos.lock"

scratch=$(mktemp -d)
clone=$scratch/facevault
pgid=""
cleanup() {
  if [ -n "$pgid" ]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

git clone -q --depth 1 "file://$(cd "$src" && pwd)" "$clone"
# The working tree over the clone: tracked and new (not ignored) files as they are now, and
# tracked files deleted since the last commit removed.
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
   while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
   tar --null -T - -cf -) | tar -xf - -C "$clone"
(cd "$src" && git ls-files -z --deleted) | (cd "$clone" && xargs -0 -r rm -f --)
[ ! -e "$scratch/shared" ] || fail "the scratch folder has a shared/ beside the clone"

port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
out=$scratch/make-run.out
# Its own session and process group (setsid does not fork here: a background job of a script
# is no group leader), so the group's id is the pid and stops make, the script and the server.
# `-o deps`: a test never installs Debian packages (the checkout's `make test` checked them).
(cd "$clone" && exec env -u FACEVAULT_SHARED -u SHARED -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
   setsid make --no-print-directory -o deps run BUILD="$(cd "$build" && pwd)" LISTEN="127.0.0.1:$port") >"$out" 2>&1 &
pgid=$!

# Bounded wait: setup checks, the demo enrollment (a few seconds a face on a loaded machine).
up=""
for _ in $(seq 300); do
  if curl -fsS --max-time 2 "$base/healthz" >"$scratch/healthz" 2>/dev/null; then up=1; break; fi
  kill -0 "$pgid" 2>/dev/null || { cat "$out" >&2; fail "make run stopped before serving"; }
  sleep 1
done
[ -n "$up" ] || { cat "$out" >&2; fail "no answer on $base/healthz within 300 s"; }
cat "$out"
jq -e '.status == "ok"' "$scratch/healthz" >/dev/null || fail "/healthz: $(cat "$scratch/healthz")"

curl -fsS --max-time 10 "$base/" >"$scratch/index.html" || fail "GET / failed"
grep -q '<title>facevault</title>' "$scratch/index.html" || fail "GET / is not the web UI"

grep -q 'shared/data' "$out" && fail "make run used the shared test data"
probe=$(sed -n 's/^probe photo: *//p' "$out")
expected=$(sed -n 's/^expected subject: *\([^ ]*\).*/\1/p' "$out")
key=$(awk '$1 == "investigator" { print $2 }' "$out")
if [ -z "$probe" ] || [ -z "$expected" ] || [ -z "$key" ]; then
  fail "make run printed no probe photo, expected subject or investigator key"
fi
case "$probe" in /*) ;; *) probe=$clone/$probe ;; esac
[ -f "$probe" ] || fail "the printed probe photo $probe does not exist"
# The demo is meaningful: the subject found comes from another photo than the probe.
case "$expected" in "$(basename "$probe" .jpg)"-*) fail "the expected subject $expected is a face of the probe photo itself" ;; esac

curl -sS --max-time 60 -o "$scratch/search.json" -w '%{http_code}' -H "Authorization: Bearer $key" \
  -F "image=@$probe" -F purpose=demo-investigation -F case=make-run-test "$base/v1/search" >"$scratch/status"
[ "$(cat "$scratch/status")" = 200 ] || fail "search answered $(cat "$scratch/status"): $(cat "$scratch/search.json")"
jq -e --arg s "$expected" '[.faces[].candidates[].subject] | index($s) != null' "$scratch/search.json" >/dev/null ||
  fail "the search of $probe did not list $expected: $(cat "$scratch/search.json")"
echo "make_run_test: ok: $base served the UI; the search of $(basename "$probe") listed $expected"
