#!/usr/bin/env bash
# Speed figures for docs/benchmarks.md, all in one sitting on this machine:
#  1. stage timings (Google Benchmark: per face, detection at 640×480 and 1920×1080);
#  2. whole-pipeline LFW throughput (decode included) with 1 and 2 threads;
#  3. the best JavaScript peer (faceapi-aligned + BlazeFace, 2 processes) on the same images.
#  4. the vault: enrollment images/s and erasure cost on 100,000 synthetic subjects.
# Usage: bench/run.sh BUILD_DIR [N_IMAGES]   (needs ../shared; about 6 minutes)
set -euo pipefail
build=${1:-build}
n=${2:-400}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${FACEVAULT_SHARED:-$root/../shared}
out=$root/out/bench; mkdir -p "$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(date -u +%F)"
"$build/bench/face_bench" --benchmark_min_time=1 --benchmark_out="$out/face_bench.json" --benchmark_out_format=json

find "$shared/data/lfw/images" -name '*.jpg' | sort | awk -v n="$n" 'NR % 33 == 1 && c < n {print; c++}' > "$out/lfw_list.txt"
count=$(wc -l < "$out/lfw_list.txt")
for t in 1 2; do
  s=$(date +%s.%N)
  "$build/facevault" embed --no-progress --threads $t --list "$out/lfw_list.txt" > "$out/fv_embed_t$t.jsonl"
  e=$(date +%s.%N)
  echo "facevault embed, $t thread(s): $count LFW images in $(echo "$e - $s" | bc) s → $(echo "scale=1; $count / ($e - $s)" | bc) images/s"
done
if [ -x "$shared/peers/run" ] && [ "${SKIP_PEERS:-0}" != 1 ]; then
  s=$(date +%s.%N)
  for i in 0 1; do
    "$shared/peers/run" embed.mjs --pipeline faceapi-aligned --detector blazeface --shard $i/2 \
      --list "$out/lfw_list.txt" --out "$out/peer_$i.jsonl" >/dev/null 2>&1 &
  done
  wait
  e=$(date +%s.%N)
  echo "peer faceapi-aligned (BlazeFace), 2 processes: $count LFW images in $(echo "$e - $s" | bc) s → $(echo "scale=1; $count / ($e - $s)" | bc) images/s"
fi

# The vault: enrollment throughput (1 and 2 workers) and erasure cost at 100,000 subjects.
if [ -x "$build/bench/vault_bench" ] && [ "${SKIP_VAULT:-0}" != 1 ]; then
  "$build/bench/vault_bench" --subjects "${VAULT_SUBJECTS:-100000}"
fi
