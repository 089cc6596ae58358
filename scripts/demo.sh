#!/usr/bin/env bash
# `make run`: the engine's main job on the sample photos that ship with the shared data
# (face-api.js examples, MIT). Usage: demo.sh FACEVAULT_BINARY SAMPLES_DIR
set -euo pipefail
bin=$1
samples=$2
if [ ! -d "$samples" ]; then
  echo "demo: sample photos not found at $samples." >&2
  echo "      Get them from the face-api.js repository (examples/images, MIT) and run" >&2
  echo "      make run SHARED=/path/containing/data/samples/face-api-js/images/.." >&2
  exit 2
fi
echo "== facevault detect: every face in a group photo (box, score, 5 keypoints, quality)"
"$bin" detect --no-progress "$samples/bbt1.jpg" | head -c 1200; echo; echo
echo "== facevault embed: one template per face (first 8 of 512 values shown)"
"$bin" embed --no-progress "$samples/sheldon/sheldon1.png" |
  sed -E 's/("template":\[([^,]*,){8})[^]]*\]/\1…]/'
echo
echo "== facevault verify: the same person"
"$bin" verify "$samples/sheldon/sheldon1.png" "$samples/sheldon/sheldon2.png"
echo
echo "== facevault verify: two different people"
"$bin" verify "$samples/sheldon/sheldon1.png" "$samples/raj/raj1.png"
