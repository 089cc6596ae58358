#!/usr/bin/env bash
# Fetch the pinned packages listed in models.lock (into the model cache) and in
# demo-photos.lock (the demo photos, into their own cache) and verify every file against its
# sha256. Idempotent: files already present with the right hash are kept, so a second run
# needs no network. Never runs a package's install scripts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache_home=${XDG_CACHE_HOME:-$HOME/.cache}
models=${FACEVAULT_MODEL_DIR:-$cache_home/facevault/models}
photos=${FACEVAULT_DEMO_PHOTOS:-$cache_home/facevault/demo-photos}

verify() { # file expected-sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# fetch LOCK_FILE DESTINATION: each package with a listed file missing (or different) in
# DESTINATION is packed once; only its listed files are extracted, each checked first.
fetch() {
  local lock=$1 dest=$2 pkg path sha p tmp tarball src need=()
  mkdir -p "$dest"
  while read -r pkg path sha; do
    case "$pkg" in ''|\#*) continue ;; esac
    verify "$dest/$pkg/$path" "$sha" || need+=("$pkg")
  done < "$lock"
  [ ${#need[@]} -gt 0 ] || return 0
  for pkg in $(printf '%s\n' "${need[@]}" | sort -u); do
    tmp=$(mktemp -d)
    echo "fetch-models: npm pack $pkg" >&2
    (cd "$tmp" && npm pack --silent --ignore-scripts "$pkg" >/dev/null)
    tarball=$(ls "$tmp"/*.tgz)
    mkdir -p "$tmp/x" && tar -xzf "$tarball" -C "$tmp/x"
    while read -r p path sha; do
      [ "$p" = "$pkg" ] || continue
      src="$tmp/x/package/$path"
      if ! verify "$src" "$sha"; then
        echo "fetch-models: $pkg/$path does not match $(basename "$lock") (sha256 $sha); refusing it" >&2
        rm -rf "$tmp"; exit 1
      fi
      mkdir -p "$(dirname "$dest/$pkg/$path")"
      install -m 0644 "$src" "$dest/$pkg/$path"
    done < "$lock"
    rm -rf "$tmp"
  done
}

fetch "$root/models.lock" "$models"
echo "fetch-models: all models verified in $models" >&2
# The demo photos (make run, make demo) live beside the clone's lock; an installed package
# ships models.lock alone.
if [ -f "$root/demo-photos.lock" ]; then
  fetch "$root/demo-photos.lock" "$photos"
  echo "fetch-models: demo photos verified in $photos" >&2
fi
