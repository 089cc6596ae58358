#!/usr/bin/env bash
# cluster_script_test: scripts/cluster.sh (docs/cluster.md, "Operations") with this build's
# binary. `up --nodes 3` in a scratch folder, then from DIR/cluster.env: three node URLs, each
# answering /healthz; the admin key accepted on every node, no key refused (401), a key of
# another role refused on an admin route (403); the CLI works after sourcing cluster.env
# (cluster status lists the three nodes). Then `down`, and every pid of NODE_PIDS and NATS_PIDS
# has exited. `down` also runs on every exit (trap). Skipped (77) only without nats-server.
#   cluster_script_test.sh SOURCE_DIR FACEVAULT_BINARY
# shellcheck disable=SC2153  # NODE_URLS, NODE_PIDS, … come from cluster.env
set -euo pipefail
src=$1 fv=$2
skip() { echo "cluster_script_test: skipped: $*"; exit 77; }
fail() { echo "cluster_script_test: FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

nats=${FV_NATS_SERVER:-}
if [ -z "$nats" ]; then
  for p in /usr/sbin/nats-server /usr/bin/nats-server /usr/local/bin/nats-server; do
    [ -x "$p" ] && { nats=$p; break; }
  done
fi
if [ -z "$nats" ] || [ ! -x "$nats" ]; then skip "nats-server is missing (scripts/setup-deps.sh installs it)"; fi
[ -x "$fv" ] || fail "$fv is not built"
script=$src/scripts/cluster.sh

# status_of URL [KEY]: the HTTP status code of a GET (curl, else Python's urllib).
status_of() {
  local url=$1 key=${2:-}
  if command -v curl >/dev/null; then
    local auth=()
    [ -z "$key" ] || auth=(-H "Authorization: Bearer $key")
    curl -s -o /dev/null --max-time 10 -w '%{http_code}' "${auth[@]}" "$url"
  else
    python3 - "$url" "$key" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1])
if sys.argv[2]:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    print(urllib.request.urlopen(req, timeout=10).status, end="")
except urllib.error.HTTPError as e:
    print(e.code, end="")
except Exception:
    print("000", end="")
PY
  fi
}
body_of() {  # URL: the body of a GET without a key
  if command -v curl >/dev/null; then curl -s --max-time 10 "$1"
  else python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"; fi
}

# exited PID: no such process, or a zombie (it has exited; here nobody may reap it: the
# processes outlive `up`, which started them, and are re-parented).
exited() {
  [ -r "/proc/$1/stat" ] || return 0
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ]
}

scratch=$(mktemp -d)
dir=$scratch/cluster
cleanup() {
  [ ! -d "$dir" ] || FACEVAULT_BIN=$fv bash "$script" down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

show_logs() {
  local f
  for f in "$dir"/logs/*; do
    [ -f "$f" ] || continue
    echo "--- $f"
    tail -n 20 "$f"
  done >&2
}

started=$SECONDS
if ! FACEVAULT_BIN=$fv FV_NATS_SERVER=$nats timeout 250 bash "$script" up --nodes 3 --dir "$dir" >"$scratch/up.out" 2>&1; then
  cat "$scratch/up.out" >&2
  show_logs
  fail "cluster.sh up failed"
fi
cat "$scratch/up.out"
ok "up --nodes 3 in $((SECONDS - started)) s"

env_file=$dir/cluster.env
[ -f "$env_file" ] || fail "no $env_file"
[ "$(stat -c %a "$env_file")" = 600 ] || fail "$env_file is mode $(stat -c %a "$env_file"), not 600 (it holds keys)"
[ "$(stat -c %a "$dir/keys.env")" = 600 ] || fail "$dir/keys.env is not mode 600"
unset FACEVAULT_MASTER_KEY FACEVAULT_AUDIT_SIGNING_KEY
# shellcheck disable=SC1090
. "$env_file"
for v in FACEVAULT_MASTER_KEY FACEVAULT_AUDIT_SIGNING_KEY; do
  [[ ${!v:-} =~ ^[0-9a-f]{64}$ ]] || fail "$v is not 64 hex digits after sourcing cluster.env"
  env | grep -q "^$v=" || fail "$v is not exported by cluster.env"
done
for v in ADMIN_KEY ENROLLER_KEY INVESTIGATOR_KEY AUDITOR_KEY REVIEWER_KEY; do
  [[ ${!v:-} == fvk_* ]] || fail "$v is not an API key: '${!v:-}'"
done
read -ra urls <<<"$NODE_URLS"
read -ra node_pids <<<"$NODE_PIDS"
read -ra nats_pids <<<"$NATS_PIDS"
read -ra stores <<<"$NATS_STORE_DIRS"
read -ra vaults <<<"$NODE_VAULT_DIRS"
[ ${#urls[@]} -eq 3 ] || fail "NODE_URLS has ${#urls[@]} URLs, not 3: $NODE_URLS"
[ ${#node_pids[@]} -eq 3 ] || fail "NODE_PIDS has ${#node_pids[@]} pids: $NODE_PIDS"
[ ${#nats_pids[@]} -eq 3 ] || fail "NATS_PIDS has ${#nats_pids[@]} pids: $NATS_PIDS"
if [ ${#stores[@]} -ne 3 ] || [ ${#vaults[@]} -ne 3 ]; then fail "NATS_STORE_DIRS / NODE_VAULT_DIRS do not list 3 folders"; fi
for d in "${stores[@]}" "${vaults[@]}"; do [ -d "$d" ] || fail "$d is not a folder"; done
for p in "${node_pids[@]}" "${nats_pids[@]}"; do ! exited "$p" || fail "pid $p has exited after up"; done
ok "cluster.env: 3 node URLs, 3 node and 3 nats-server pids running, keys of every role"

for u in "${urls[@]}"; do
  case $u in http://127.0.0.1:*) ;; *) fail "node URL $u is not on 127.0.0.1" ;; esac
  [ "$(status_of "$u/healthz")" = 200 ] || fail "$u/healthz did not answer 200"
  body_of "$u/healthz" | grep -q '"status":"ok"' || fail "$u/healthz: $(body_of "$u/healthz")"
  code=$(status_of "$u/v1/audit?limit=1" "$ADMIN_KEY")
  [ "$code" = 200 ] || fail "GET $u/v1/audit with ADMIN_KEY answered $code"
  code=$(status_of "$u/v1/audit?limit=1")
  [ "$code" = 401 ] || fail "GET $u/v1/audit without a key answered $code, not 401"
  code=$(status_of "$u/v1/audit?limit=1" "$ENROLLER_KEY")
  [ "$code" = 403 ] || fail "GET $u/v1/audit with ENROLLER_KEY answered $code, not 403"
  code=$(status_of "$u/v1/whoami" "$REVIEWER_KEY")
  [ "$code" = 200 ] || fail "GET $u/v1/whoami with REVIEWER_KEY answered $code"
  ok "$u: healthz; admin 200, no key 401, enroller 403 on GET /v1/audit; reviewer signs in"
done

# The CLI after `source cluster.env` (the cluster keys come from it).
"$fv" cluster status --nats "$NATS_URLS" --json >"$scratch/status.json" || fail "cluster status failed"
members=$(grep -o '"name":"n[0-9]*"' "$scratch/status.json" | sort -u | wc -l)
[ "$members" -eq 3 ] || fail "cluster status lists $members members: $(cat "$scratch/status.json")"
ok "facevault cluster status lists the 3 nodes"

if ! FACEVAULT_BIN=$fv bash "$script" down --dir "$dir" >"$scratch/down.out" 2>&1; then
  cat "$scratch/down.out" >&2
  fail "cluster.sh down failed"
fi
cat "$scratch/down.out"
for p in "${node_pids[@]}" "${nats_pids[@]}"; do exited "$p" || fail "pid $p still runs after down"; done
! grep -q SIGKILL "$scratch/down.out" || fail "down had to SIGKILL: $(cat "$scratch/down.out")"
for n in n1 n2 n3; do
  grep -q 'stopping (signal 15)' "$dir/logs/node-$n.log" || fail "node $n did not stop on SIGTERM: $(tail -n 5 "$dir/logs/node-$n.log")"
done
ok "down: every pid in NODE_PIDS and NATS_PIDS has exited, on SIGTERM"
FACEVAULT_BIN=$fv bash "$script" down --dir "$dir" >/dev/null || fail "a second down failed"
ok "a second down is harmless"
echo "cluster_script_test: ok"
