#!/usr/bin/env bash
# `make demo`: the engine's main job (detect, embed, verify; no vault, no server) on the group
# photos pinned in demo-photos.lock, which `make models` fetched (face-api's demo photos, MIT).
#   scripts/demo.sh [FACEVAULT_BINARY]
set -euo pipefail
bin=${1:-build/facevault}
photos=${FACEVAULT_DEMO_PHOTOS:-${XDG_CACHE_HOME:-$HOME/.cache}/facevault/demo-photos}/@vladmandic/face-api@1.7.15/demo
[ -x "$bin" ] || { echo "demo: $bin is not built (make demo builds it)" >&2; exit 2; }
[ -f "$photos/sample1.jpg" ] ||
  { echo "demo: no demo photos in $photos; run \`make models\` (scripts/fetch-models.sh)" >&2; exit 2; }
cd "$photos"  # short file names in the output
echo "== facevault detect: every face in a group photo (box, score, 5 keypoints, quality)"
out=$("$bin" detect --no-progress sample1.jpg)
echo "${out:0:1200}…"; echo
echo "== facevault embed: one template per face (first 8 of 512 values shown)"
out=$("$bin" embed --no-progress sample3.jpg | sed -E 's/("template":\[([^,]*,){8})[^]]*\]/\1…]/g')
echo "${out:0:1600}…"; echo
# The largest face of sample1.jpg and of sample3.jpg are the same person (the head tilted in
# one); the largest of sample6.jpg is someone else.
echo "== facevault verify: the same person in two photos"
"$bin" verify sample1.jpg sample3.jpg
echo
echo "== facevault verify: two different people"
"$bin" verify sample1.jpg sample6.jpg
