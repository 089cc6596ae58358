#!/usr/bin/env bash
# Fails when a source file of src/ includes a header of a module it may not depend on.
#
#   scripts/check-layering.sh [SRC_DIR]     (default: the src/ beside this script)
#
# Every folder of SRC_DIR is a module and a library (src/CMakeLists.txt); a module may include
# its own headers and those of the modules below it, never one above it: that keeps the vault
# buildable without OpenCV and the index, and lets the service be reused by any adapter. The
# build's link lines already follow this order; this check catches an #include that would
# quietly lean on a header of a module above (src/README.md explains the layers). It reads
# every `#include "X/…"` of every file under SRC_DIR/<module>/ and prints file:line and the
# rule broken for each one whose X is not allowed; exit 1 if there is any, 0 otherwise.
set -euo pipefail

src_dir=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src"}
[[ -d $src_dir ]] || { echo "check-layering: no such directory: $src_dir" >&2; exit 2; }

# The one table of allowed dependencies (besides a module's own headers). `bench` is the
# benchmark harness library (bench/harness/), which the CLI's `bench index` and `eval ident` run.
declare -A allowed=(
  [common]=""
  [nn]="common"
  [image]="common"
  [face]="common nn image"
  [eval]="common nn image face"
  [index]="common"
  [vault]="common"
  [cluster]="common vault"
  [service]="common nn image face eval index vault cluster"
  [server]="common nn image face eval index vault cluster service"
  [cli]="common nn image face eval index vault cluster service server bench"
)

violations=0
report() {  # file line rule
  echo "$1:$2: $3" >&2
  violations=$((violations + 1))
}

for dir in "$src_dir"/*/; do
  module=$(basename "$dir")
  if [[ ! -v "allowed[$module]" ]]; then
    report "${dir%/}" 0 "'$module' is not in the table of modules of scripts/check-layering.sh (add it with the modules it may include)"
    continue
  fi
  # grep -H -n: "file:line:text"; no match in a module is fine.
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    text=${rest#*:}
    [[ $text =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^/\"]+)/ ]] || continue
    target=${BASH_REMATCH[1]}
    [[ $target == "$module" ]] && continue
    ok=0
    for dep in ${allowed[$module]}; do
      [[ $target == "$dep" ]] && ok=1 && break
    done
    if ((ok == 0)); then
      report "$file" "$line" "module '$module' may not include '$target/…' (${module} may include: ${allowed[$module]:-nothing but itself})"
    fi
  done < <(grep -rHn --include='*.h' --include='*.hpp' --include='*.cpp' --include='*.cc' --include='*.in' \
                -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir" || true)
done

if ((violations > 0)); then
  echo "check-layering: $violations include(s) against the layering of src/ (src/README.md)" >&2
  exit 1
fi
echo "check-layering: every include of $src_dir follows the layering"
