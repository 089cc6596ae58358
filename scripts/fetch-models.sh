#!/usr/bin/env bash
# Fetch the pinned model packages listed in models.lock into the model cache and verify
# every file against its sha256. Idempotent: files already present with the right hash are
# kept, so a second run needs no network. Never runs a package's install scripts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${FACEVAULT_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/facevault/models}
mkdir -p "$cache"

verify() { # file expected-sha
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

need=()
while read -r pkg path sha; do
  case "$pkg" in ''|\#*) continue ;; esac
  verify "$cache/$pkg/$path" "$sha" || need+=("$pkg")
done < "$root/models.lock"

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
      echo "fetch-models: $pkg/$path does not match models.lock (sha256 $sha); refusing it" >&2
      rm -rf "$tmp"; exit 1
    fi
    mkdir -p "$(dirname "$cache/$pkg/$path")"
    install -m 0644 "$src" "$cache/$pkg/$path"
  done < "$root/models.lock"
  rm -rf "$tmp"
done
echo "fetch-models: all models verified in $cache" >&2
