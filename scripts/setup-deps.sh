#!/usr/bin/env bash
# Install the Debian packages facevault builds and tests with. Skips apt entirely when all
# are already installed, so repeated `make` runs stay offline and fast.
set -euo pipefail
pkgs=(cmake make g++ pkg-config libopencv-dev libsodium-dev libsqlite3-dev nlohmann-json3-dev
      libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev ca-certificates sqlite3 jq
      libcpp-httplib-dev chromium libjpeg-dev
      libhnswlib-dev libfaiss-dev
      nats-server libnats-dev  # cluster mode: JetStream (docs/cluster.md) and its C client
      clang libclang-rt-14-dev  # libFuzzer and the sanitizer runtimes (make fuzz, make test)
      lld  # links the ~80 test binaries of each of make test's builds in a third of ld.bfd's CPU time
      python3-dev pybind11-dev python3-numpy python3-pytest  # the Python module and its tests
      dpkg-dev)  # make package: CPack's .deb and its library dependencies (dpkg-shlibdeps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm fetches the pinned model packages; a machine may carry its own Node.js build with npm.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
