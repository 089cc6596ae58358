#!/usr/bin/env bash
# `make run` (web demo): a fresh demo vault under ./var/demo-vault with the sample characters of
# face-api.js enrolled under a demo consent record, one API key per role, and the server with its
# web UI on http://127.0.0.1:8080 (loopback only). Ctrl-C stops it.
#   scripts/serve-demo.sh [FACEVAULT_BINARY] [SAMPLES_DIR] [LISTEN]
set -euo pipefail
FV=${1:-build/facevault}
SAMPLES=${2:-../shared/data/samples/face-api-js/images}
LISTEN=${3:-127.0.0.1:8080}
VAULT=var/demo-vault
[ -x "$FV" ] || { echo "serve-demo: $FV is not built (make build)" >&2; exit 2; }
[ -d "$SAMPLES" ] || { echo "serve-demo: no sample photos at $SAMPLES (see README, Test data)" >&2; exit 2; }
export FACEVAULT_VAULT=$VAULT
unset FACEVAULT_MASTER_KEY
# The demo vault holds nothing but the sample photos' templates: rebuilt on every run.
rm -rf "$VAULT"
mkdir -p var
"$FV" init "$VAULT" --actor demo >/dev/null
n=0
for dir in "$SAMPLES"/*/; do
  name=$(basename "$dir")
  shopt -s nullglob
  photos=("$dir"/*.png "$dir"/*.jpg)
  shopt -u nullglob
  [ ${#photos[@]} -gt 1 ] || continue
  basis=$("$FV" basis add --subject "$name" --kind consent --reference "demo-consent-2026" \
          --purpose access-control --purpose demo-investigation --actor demo)
  # The last photo of each character is left out, to be used as a search probe.
  "$FV" enroll --subject "$name" --basis "$basis" --actor demo "${photos[@]:0:${#photos[@]}-1}" >/dev/null || true
  n=$((n + 1))
done
echo "demo vault: $VAULT with $n people enrolled under consent record demo-consent-2026 (purposes access-control, demo-investigation)"
keys=var/demo-keys.txt
( umask 077; : > "$keys" )
for role in admin enroller investigator auditor; do
  purposes=()
  case $role in admin|investigator) purposes=(--purpose access-control --purpose demo-investigation) ;; esac
  k=$("$FV" key create --role "$role" "${purposes[@]}" --label "demo $role" --actor demo 2>/dev/null)
  printf '%-13s %s\n' "$role" "$k" | tee -a "$keys"
done
echo "(keys also in $keys; probes: the last photo of each character in $SAMPLES; public opt-out page: /optout)"
exec "$FV" serve --listen "$LISTEN"
