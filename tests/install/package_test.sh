#!/usr/bin/env bash
# package_test: builds the .deb from this build folder with CPack, extracts it into a
# scratch root with dpkg-deb -x (nothing is installed on this machine) and checks what a
# deployer gets: the layout, the dependencies, the maintainer scripts, the installed binary's
# --help and init, the man page, the completion, the unit file (systemd-analyze verify) and
# the model fetch script in its installed place. Exit 77: skipped.
# Usage: package_test.sh BUILD_DIR SCRATCH_DIR CPACK [SANITIZE]
set -euo pipefail
build=$1 scratch=$2 cpack=$3 sanitize=${4:-}

case "${sanitize^^}" in
  ''|OFF|0|FALSE|NO) ;;
  *) echo "package_test: skipped: sanitizer build ($sanitize); its binary needs the sanitizer runtime"; exit 77 ;;
esac
for tool in dpkg-deb "$cpack"; do
  command -v "$tool" >/dev/null || { echo "package_test: skipped: $tool not found"; exit 77; }
done

fail() { echo "package_test: FAIL: $*" >&2; exit 1; }
rm -rf "$scratch"
mkdir -p "$scratch"

# --- the package ---
if ! timeout 240 "$cpack" -G DEB -B "$scratch/out" --config "$build/CPackConfig.cmake" >"$scratch/cpack.log" 2>&1; then
  cat "$scratch/cpack.log" >&2
  fail "cpack -G DEB failed"
fi
debs=("$scratch"/out/facevault_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one facevault_*.deb in $scratch/out"
deb=${debs[0]}
echo "package_test: built $(basename "$deb")"

dpkg-deb -I "$deb" >"$scratch/info.txt"
dpkg-deb -c "$deb" >"$scratch/contents.txt"
depends=$(dpkg-deb -f "$deb" Depends)
echo "package_test: Depends: $depends"
for lib in libopencv-core libopencv-dnn libsodium libsqlite3 adduser; do
  grep -q "$lib" <<<"$depends" || fail "Depends does not name $lib: $depends"
done
python_in=0
grep -q '^set(CPACK_COMPONENTS_ALL "[^"]*python' "$build/CPackConfig.cmake" && python_in=1
if [ $python_in = 1 ]; then
  grep -q 'python3 (>= 3' <<<"$depends" || fail "the Python module is packaged but Depends has no python3"
  grep -q 'python3-numpy' <<<"$depends" || fail "the Python module is packaged but Depends has no python3-numpy"
fi
[ "$(dpkg-deb -f "$deb" Package)" = facevault ] || fail "package name is not facevault"
# Model weights stay out of the package (their licences do not all allow shipping them).
if grep -Ei '\.(onnx|bin|pb|tflite)$|weights_manifest' "$scratch/contents.txt"; then
  fail "the package holds model files"
fi

mkdir "$scratch/control"
dpkg-deb -e "$deb" "$scratch/control"
for script in postinst prerm postrm; do
  [ -x "$scratch/control/$script" ] || fail "no executable $script maintainer script"
  sh -n "$scratch/control/$script" || fail "$script: shell syntax error"
done
grep -qx '/etc/default/facevault' "$scratch/control/conffiles" || fail "/etc/default/facevault is not a conffile"
grep -q 'adduser --system' "$scratch/control/postinst" || fail "postinst does not create the system user"

# --- the layout ---
root=$scratch/root
dpkg-deb -x "$deb" "$root"
for f in usr/bin/facevault usr/lib/systemd/system/facevault.service usr/share/man/man1/facevault.1.gz \
         etc/default/facevault usr/share/facevault/models.lock usr/share/facevault/scripts/fetch-models.sh \
         usr/share/doc/facevault/deploy.md; do
  [ -f "$root/$f" ] || fail "missing /$f"
done
[ -x "$root/usr/bin/facevault" ] || fail "/usr/bin/facevault is not executable"
if [ $python_in = 1 ]; then
  ls "$root"/usr/lib/python3/dist-packages/facevault/_facevault.*.so >/dev/null 2>&1 ||
    fail "the Python extension module is missing"
  PYTHONPATH=$root/usr/lib/python3/dist-packages /usr/bin/python3 -c 'import facevault' ||
    fail "the installed Python package does not import"
fi

# --- the installed binary: --help, and init with no model files anywhere ---
bin=$root/usr/bin/facevault
help=$("$bin" --help) || fail "facevault --help exited $?"
grep -q 'serve' <<<"$help" || fail "--help does not list serve"
FACEVAULT_MODEL_DIR=$scratch/no-models HOME=$scratch/home XDG_CACHE_HOME= FACEVAULT_MASTER_KEY= \
  "$bin" init "$scratch/vault" >"$scratch/init.log" || { cat "$scratch/init.log" >&2; fail "init exited non-zero"; }
for f in vault.db config.json master.key; do
  [ -f "$scratch/vault/$f" ] || fail "init left no $f"
done
[ "$(stat -c %a "$scratch/vault/master.key")" = 600 ] || fail "master.key mode is $(stat -c %a "$scratch/vault/master.key"), not 600"
[ "$(stat -c %a "$scratch/vault")" = 700 ] || fail "vault directory mode is $(stat -c %a "$scratch/vault"), not 700"
[ ! -e "$scratch/no-models" ] || fail "init created a model folder"

# --- the man page: every command of --help has its section; man renders it without warnings ---
man_page=$root/usr/share/man/man1/facevault.1.gz
gzip -t "$man_page" || fail "the man page is not valid gzip"
zcat "$man_page" >"$scratch/facevault.1"
grep -q '^\.TH FACEVAULT 1' "$scratch/facevault.1" || fail "the man page has no .TH FACEVAULT 1"
commands=$(sed -n '/^[Ss][Uu][Bb][Cc][Oo][Mm][Mm][Aa][Nn][Dd][Ss]:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p' <<<"$help")
[ -n "$commands" ] || fail "no commands found in --help"
for c in $commands; do
  grep -qx ".SS \"facevault $c\"" "$scratch/facevault.1" || fail "the man page has no section for $c"
done
if command -v man >/dev/null; then
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man_page" 2>&1 >/dev/null) || fail "man -l failed"
  [ -z "$warnings" ] || fail "man reports: $warnings"
fi

# --- bash completion: shipped exactly when the binary can write it ---
completion=$root/usr/share/bash-completion/completions/facevault
if "$bin" completion bash >/dev/null 2>&1; then
  [ -s "$completion" ] || fail "the binary has \`completion bash\` but the package has no completion file"
  bash -n "$completion" || fail "the completion file is not valid bash"
else
  [ ! -e "$completion" ] || fail "a completion file without a \`completion\` command"
fi

# --- the unit: hardening present, ExecStart is the packaged binary, systemd accepts it ---
unit=$root/usr/lib/systemd/system/facevault.service
for line in User=facevault StateDirectory=facevault ProtectSystem=strict NoNewPrivileges=yes \
            PrivateTmp=yes ProtectHome=yes CapabilityBoundingSet= 'SystemCallFilter=@system-service' \
            'EnvironmentFile=-/etc/default/facevault' 'Environment=FACEVAULT_MODEL_DIR=/var/lib/facevault/models'; do
  grep -qxF "$line" "$unit" || fail "the unit has no line $line"
done
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) serve.*/\1/p' "$unit")
[ "$exec_start" = /usr/bin/facevault ] || fail "ExecStart runs '$exec_start', not /usr/bin/facevault serve"
if command -v systemd-analyze >/dev/null; then
  # A copy whose ExecStart is the extracted binary (verify checks that it exists); man finds
  # the page of Documentation=man:facevault(1) in the extracted root.
  mkdir "$scratch/unit"
  sed "s|^ExecStart=/usr/bin/facevault|ExecStart=$bin|" "$unit" >"$scratch/unit/facevault.service"
  if ! MANPATH=$root/usr/share/man systemd-analyze verify "$scratch/unit/facevault.service" >"$scratch/verify.log" 2>&1; then
    cat "$scratch/verify.log" >&2
    fail "systemd-analyze verify rejects the unit"
  fi
  # Unknown or unparsable settings are only warnings for verify, naming the file and line.
  if grep -E 'facevault\.service:[0-9]+:' "$scratch/verify.log"; then
    fail "systemd-analyze verify warns about the unit"
  fi
  echo "package_test: systemd-analyze verify: unit OK"
else
  echo "package_test: note: no systemd-analyze here: unit not verified"
fi

# --- the model fetch, from its installed place: with the models already cached it only
# verifies them (no network), which proves it finds the packaged models.lock ---
models=${FACEVAULT_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/facevault/models}
cached=1
while read -r pkg path sha; do
  case "$pkg" in ''|\#*) continue ;; esac
  [ -f "$models/$pkg/$path" ] && [ "$(sha256sum "$models/$pkg/$path" | cut -d' ' -f1)" = "$sha" ] || cached=0
done <"$root/usr/share/facevault/models.lock"
if [ $cached = 1 ]; then
  FACEVAULT_MODEL_DIR=$models bash "$root/usr/share/facevault/scripts/fetch-models.sh" >"$scratch/fetch.log" 2>&1 ||
    { cat "$scratch/fetch.log" >&2; fail "the installed fetch-models.sh failed on the cached models"; }
  grep -q 'all models verified' "$scratch/fetch.log" || fail "the installed fetch-models.sh did not verify the models"
else
  echo "package_test: note: no verified model cache at $models: installed fetch-models.sh not run"
fi

echo "package_test: OK ($(grep -c '^-' "$scratch/contents.txt") files in the package)"
