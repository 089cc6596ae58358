#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (clang, ASan+UBSan) in build-fuzz/ and runs them one after
# the other (fuzz/README.md). Seeds come from fuzz/corpus/<name>/ (and fuzz/regressions/<name>/)
# copied into a scratch corpus under the build folder, so the repository stays clean.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--build DIR] [--no-build] [fuzzer ...] [-- libFuzzer flags]
#
# --seconds N: each fuzzer runs N seconds (-max_total_time); --runs N: N executions (-runs);
# both: whichever ends first. Default: 60 seconds each. Fuzzers: image face_post tfjs manifest
# vault_open http (default: all). Prints one summary line per fuzzer and exits non-zero when
# any fuzzer left a crash, leak, timeout or out-of-memory artifact (kept in DIR/fuzz-artifacts/).
set -euo pipefail

ALL=(image face_post tfjs manifest vault_open http)
seconds="" runs="" build="build-fuzz" do_build=1 extra=() fuzzers=()
root="$(cd "$(dirname "$0")/.." && pwd)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) fuzzers+=("$1"); shift ;;
  esac
done
[[ ${#fuzzers[@]} -eq 0 ]] && fuzzers=("${ALL[@]}")
[[ -z "$seconds" && -z "$runs" ]] && seconds=60
[[ "$build" = /* ]] || build="$root/$build"
for f in "${fuzzers[@]}"; do
  [[ " ${ALL[*]} " == *" $f "* ]] || { echo "fuzz.sh: no fuzzer '$f' (have: ${ALL[*]})" >&2; exit 2; }
done

if [[ $do_build = 1 ]]; then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACEVAULT_FUZZ=ON \
      -DFACEVAULT_BUILD_TESTS=OFF -DFACEVAULT_BUILD_BENCH=OFF >/dev/null
  fi
  cmake --build "$build" -j"${FUZZ_JOBS:-1}" --target "${fuzzers[@]/%/_fuzzer}" >/dev/null
fi

# Per-exec limits: rss 2.5 GB (an 80 MP image decodes to 240 MB, plus OpenCV's copies),
# 10 s per input (the HTTP fuzzer's server runs the real nets on the rare valid image).
opts=(-rss_limit_mb=2560 -timeout=10 -print_final_stats=1 -max_len=65536)
[[ -n "$seconds" ]] && opts+=(-max_total_time="$seconds")
[[ -n "$runs" ]] && opts+=(-runs="$runs")

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"  # a UBSan finding with its call stack
status=0
for f in "${fuzzers[@]}"; do
  bin="$build/fuzz/${f}_fuzzer"
  corpus="$build/fuzz-corpus/$f"
  art="$build/fuzz-artifacts/$f/"
  log="$build/fuzz-logs/$f.log"
  mkdir -p "$corpus" "$art" "$(dirname "$log")"
  cp -n "$root/fuzz/corpus/$f/"* "$corpus/" 2>/dev/null || true
  cp -n "$root/fuzz/regressions/$f/"* "$corpus/" 2>/dev/null || true
  dict=()
  [[ -f "$root/fuzz/dict/$f.dict" ]] && dict=(-dict="$root/fuzz/dict/$f.dict")
  # The server's threads run beside libFuzzer's per-input leak check, which then reports
  # libFuzzer's own start-up allocations (seen once; the input did not reproduce it alone).
  [[ $f = http ]] && dict+=(-detect_leaks=0)
  before=$(find "$art" -type f | wc -l)
  start=$(date +%s)
  rc=0
  (cd "$build" && "$bin" "${opts[@]}" "${dict[@]}" -artifact_prefix="$art" "${extra[@]}" "$corpus") >"$log" 2>&1 || rc=$?
  wall=$(( $(date +%s) - start ))
  after=$(find "$art" -type f | wc -l)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  eps=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  cov0=$(grep -m1 -o 'INITED cov: [0-9]*' "$log" | grep -o '[0-9]*' || echo "$cov")
  crashes=$(( after - before ))
  printf 'fuzz %-11s execs=%s exec/s=%s wall=%ss cov=%s (+%s in this run) artifacts=%s rc=%s log=%s\n' \
    "$f" "${execs:-0}" "${eps:-0}" "$wall" "${cov:-0}" "$(( ${cov:-0} - ${cov0:-0} ))" "$crashes" "$rc" "$log"
  if [[ $rc -ne 0 || $crashes -ne 0 ]]; then
    status=1
    grep -m3 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|Test unit written' "$log" | sed 's/^/  /' || true
  fi
done
exit $status
