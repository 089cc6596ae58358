#!/usr/bin/env bash
# `make run` (web demo): a fresh demo vault under ./var/demo-vault, people enrolled under a demo
# consent record, one API key per role, a probe photo to search with and the subject it should
# find, then the server with its web UI on http://127.0.0.1:8080 (loopback only). Ctrl-C stops it.
#   scripts/serve-demo.sh [FACEVAULT_BINARY] [SHARED_SAMPLES_DIR] [LISTEN]
# The people: when SHARED_SAMPLES_DIR (../shared/data/samples/face-api-js/images, this
# project's own test data) exists, its characters; otherwise every acceptable face of the
# group photos pinned in demo-photos.lock, which `make models` fetched (nothing else needed).
set -euo pipefail
FV=${1:-build/facevault}
SHARED_SAMPLES=${2:-../shared/data/samples/face-api-js/images}
LISTEN=${3:-127.0.0.1:8080}
PINNED=${FACEVAULT_DEMO_PHOTOS:-${XDG_CACHE_HOME:-$HOME/.cache}/facevault/demo-photos}/@vladmandic/face-api@1.7.15
VAULT=var/demo-vault
PHOTOS=var/demo-photos
CONSENT=demo-consent-2026
PURPOSES=(--purpose access-control --purpose demo-investigation)
[ -x "$FV" ] || { echo "serve-demo: $FV is not built (make run builds it)" >&2; exit 2; }
export FACEVAULT_VAULT=$VAULT
unset FACEVAULT_MASTER_KEY

# The demo vault holds nothing but the demo photos' templates: rebuilt on every run.
rm -rf "$VAULT" "$PHOTOS"
mkdir -p var
"$FV" init "$VAULT" --actor demo >/dev/null

# add_person SUBJECT [enroll options] PHOTO…: a consent record, then the photos; counts the
# person when at least one photo was enrolled (enroll reports each photo it refuses).
add_person() {
  local subject=$1 basis
  shift
  basis=$("$FV" basis add --subject "$subject" --kind consent --reference "$CONSENT" "${PURPOSES[@]}" --actor demo)
  local rc=0
  # --keep-reference: reviewers see each enrolled face beside the probe on the review page.
  "$FV" enroll --subject "$subject" --basis "$basis" --actor demo --keep-reference "$@" >/dev/null || rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ]; then n=$((n + 1)); fi
  return 0
}

n=0
if [ -d "$SHARED_SAMPLES" ]; then
  # One subject per character with several photos; the last photo of each is left out as a probe.
  probe="" expected=""
  for dir in "$SHARED_SAMPLES"/*/; do
    dir=${dir%/}
    name=$(basename "$dir")
    shopt -s nullglob
    photos=("$dir"/*.png "$dir"/*.jpg)
    shopt -u nullglob
    [ ${#photos[@]} -gt 1 ] || continue
    add_person "$name" "${photos[@]:0:${#photos[@]}-1}"
    [ -n "$probe" ] || { probe=${photos[-1]}; expected=$name; }
  done
  source_text="the characters of $SHARED_SAMPLES (the last photo of each is left out, a probe)"
  why="a photo of $expected left out of the vault"
else
  [ -f "$PINNED/demo/sample1.jpg" ] ||
    { echo "serve-demo: no demo photos in $PINNED; run \`make models\` (scripts/fetch-models.sh)" >&2; exit 2; }
  # A copy in the checkout, so the web UI's file picker finds them.
  mkdir -p "$PHOTOS"
  cp "$PINNED"/demo/sample*.jpg "$PINNED/LICENSE" "$PHOTOS/"
  # Every acceptable face of sample2..6 is its own subject (sampleN-faceK, K as `detect`
  # numbers the faces); sample1.jpg stays out of the vault and is the probe.
  enrolled=("$PHOTOS"/sample{2,3,4,5,6}.jpg)
  echo "serve-demo: enrolling every acceptable face of ${#enrolled[@]} group photos (a few seconds each)…" >&2
  while read -r file k; do
    add_person "$(basename "$file" .jpg)-face$k" --face "$k" "$file"
  done < <("$FV" detect --no-progress "${enrolled[@]}" |
           jq -r '.file as $f | .faces | to_entries[] | select(.value.quality.acceptable) | "\($f) \(.key)"')
  source_text="each acceptable face of $PHOTOS/sample2..6.jpg (@vladmandic/face-api@1.7.15 demo photos, MIT)"
  # The subject to expect is whoever the vault finds for the kept-out photo: asked once here,
  # as the demo admin (the audit log shows these searches under case demo-setup).
  top_candidate() { # PHOTO → "SUBJECT SIMILARITY" of the best candidate over its faces, or nothing
    "$FV" search --json --purpose demo-investigation --case demo-setup --actor demo "$1" |
      jq -r '[.faces[].candidates[]] | max_by(.similarity) // empty | "\(.subject) \(.similarity)"'
  }
  probe=$PHOTOS/sample1.jpg
  best=$(top_candidate "$probe")
  why="similarity ${best#* }: the same person in another photo; $probe itself is not enrolled"
  if [ -z "$best" ]; then
    # No one in sample1 is found again: an enrolled photo shows at least that search works.
    probe=$PHOTOS/sample2.jpg
    best=$(top_candidate "$probe")
    why="an enrolled photo searched again: no person of sample1.jpg was found in the other photos"
  fi
  expected=${best% *}
fi
[ "$n" -gt 0 ] || { echo "serve-demo: no one could be enrolled" >&2; exit 1; }
echo "demo vault: $VAULT with $n people enrolled under consent record $CONSENT (purposes access-control, demo-investigation)"
echo "  the people: $source_text"
echo "probe photo:      $probe"
echo "expected subject: $expected ($why)"
echo "  search it in the web UI as the investigator (purpose demo-investigation, any case reference)"
keys=var/demo-keys.txt
( umask 077; : > "$keys" )
# Two reviewer keys: a candidate is confirmed only when two different reviewers confirm it.
for who in admin enroller investigator auditor reviewer reviewer-2; do
  role=${who%-2}
  purposes=()
  case $role in admin|investigator) purposes=("${PURPOSES[@]}") ;; esac
  k=$("$FV" key create --role "$role" "${purposes[@]}" --label "demo $who" --actor demo 2>/dev/null)
  printf '%-13s %s\n' "$who" "$k" | tee -a "$keys"
done
echo "(keys also in $keys; public opt-out page: /optout; serving on http://$LISTEN)"
exec "$FV" serve --listen "$LISTEN"
