#!/usr/bin/env bash
# A facevault cluster on this machine (docs/cluster.md, "Operations"): N nats-servers with
# JetStream forming one NATS cluster, N facevault nodes serving HTTP, all on 127.0.0.1 only.
#
#   scripts/cluster.sh up     --nodes N --dir DIR [--shards S] [--bin FACEVAULT] [--base-port P]
#   scripts/cluster.sh down   --dir DIR
#   scripts/cluster.sh run    --nodes N --dir DIR [--shards S] [--bin FACEVAULT] [--base-port P]
#   scripts/cluster.sh status --dir DIR
#
# up      starts the servers and nodes in the background (each in its own session: they outlive
#         this script and the terminal), creates the cluster (S shards, default 16; min(3, N)
#         replicas) and one API key per role, writes DIR/cluster.env and returns. DIR must be
#         new or empty. If a step fails, what was started is stopped again (logs stay).
# down    stops what `up` started in DIR, nodes first then servers: SIGTERM, then SIGKILL after
#         DOWN_WAIT seconds (default 20). Works after a failed `up`, and a second time. DIR is
#         kept (logs, NATS stores, node vaults): remove it to discard the cluster.
# run     `up`, then stays in the foreground until Ctrl-C (or until a process of the cluster
#         exits), then `down`. `make cluster` runs this with 3 nodes in var/cluster.
# status  `facevault cluster status` of the cluster in DIR.
#
# DIR/cluster.env (mode 0600; `source DIR/cluster.env`): FACEVAULT_MASTER_KEY and
# FACEVAULT_AUDIT_SIGNING_KEY (exported: CLI commands need them), CLUSTER_DIR, NATS_URLS
# (comma-separated, as --nats takes them), NODE_NAMES, NODE_URLS (HTTP base URLs), NODE_PIDS,
# NATS_PIDS, NATS_STORE_DIRS, NODE_VAULT_DIRS (space-separated), and ADMIN_KEY, ENROLLER_KEY,
# INVESTIGATOR_KEY, AUDITOR_KEY, REVIEWER_KEY, REVIEWER2_KEY (two reviewers: a candidate is
# confirmed only when two different reviewers confirm it). The two cluster keys are also in
# DIR/keys.env (0600). Logs: DIR/logs/nats-nK.log, DIR/logs/node-nK.log (stderr) and
# DIR/logs/node-nK.out (the node's {"url": …} line).
#
# The binary: --bin, else $FACEVAULT_BIN, else build/facevault. nats-server: $FV_NATS_SERVER,
# else /usr/sbin, /usr/bin or /usr/local/bin (Debian's package: scripts/setup-deps.sh). Ports:
# free loopback ports from the kernel (python3), else probed upward from --base-port (default
# 14222). Every wait is bounded: START_WAIT seconds (default 120) for the NATS cluster and
# for the nodes to listen, KEY_WAIT (default 60) for the API keys.
set -euo pipefail

me=cluster.sh
die() { echo "$me: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

cmd=${1:-}
[ -n "$cmd" ] || { usage >&2; exit 1; }
shift
NODES="" DIR="" SHARDS=16 BASE_PORT=14222
FV=${FACEVAULT_BIN:-build/facevault}
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=${2:?--nodes takes a number}; shift 2 ;;
    --dir) DIR=${2:?--dir takes a folder}; shift 2 ;;
    --shards) SHARDS=${2:?--shards takes a number}; shift 2 ;;
    --bin) FV=${2:?--bin takes the facevault binary}; shift 2 ;;
    --base-port) BASE_PORT=${2:?--base-port takes a port}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (scripts/cluster.sh --help)" ;;
  esac
done
case $cmd in
  up|down|run|status) ;;
  -h|--help|help) usage; exit 0 ;;
  *) die "unknown command '$cmd': up, down, run or status (scripts/cluster.sh --help)" ;;
esac
[ -n "$DIR" ] || die "$cmd needs --dir DIR"
START_WAIT=${START_WAIT:-120}
KEY_WAIT=${KEY_WAIT:-60}
DOWN_WAIT=${DOWN_WAIT:-20}

# --- stopping (down) ------------------------------------------------------------------------
# DIR/pids lists every process `up` started, one "KIND PID NAME" a line, written the moment
# each one starts. A pid counts as ours only while its command line names DIR (the servers'
# config and the nodes' --vault live there), so a pid reused by another program is never hit.

# ours PID: the process runs and is one of this cluster's (a zombie has exited: not running).
ours() {
  local pid=$1 state cmdline
  [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$state" != Z ] || return 1
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  case $cmdline in *"$DIR/"*) return 0 ;; *) return 1 ;; esac
}

# reap PID: a child of this shell (`run`) that has exited is waited for, or it stays a zombie.
reap() {
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" = Z ] || return 0
  wait "$1" 2>/dev/null || true
}

# stop_pids LABEL PID…: SIGTERM to each, a bounded wait for all, then SIGKILL to the rest.
stop_pids() {
  local label=$1 pid left deadline
  shift
  [ $# -gt 0 ] || return 0
  for pid in "$@"; do
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + DOWN_WAIT))
  while :; do
    left=()
    for pid in "$@"; do
      if ours "$pid"; then left+=("$pid"); else reap "$pid"; fi
    done
    [ ${#left[@]} -gt 0 ] || break
    if [ $SECONDS -ge $deadline ]; then
      echo "$me: $label ${left[*]} still running after ${DOWN_WAIT} s: SIGKILL" >&2
      for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
      deadline=$((SECONDS + 10))
      DOWN_WAIT=10
    fi
    sleep 0.2
  done
}

down() {
  local f=$DIR/pids
  [ -f "$f" ] || { echo "$me: nothing was started in $DIR (no $f)"; return 0; }
  local node_pids nats_pids
  node_pids=$(awk '$1 == "node" { print $2 }' "$f")
  nats_pids=$(awk '$1 == "nats" { print $2 }' "$f")
  # Nodes first: a node stopping still talks to NATS.
  # shellcheck disable=SC2086  # pid lists
  stop_pids "node(s)" $node_pids
  # shellcheck disable=SC2086
  stop_pids "nats-server(s)" $nats_pids
  echo "$me: stopped the cluster in $DIR (data and logs kept there: rm -rf $DIR discards it)"
}

# --- starting (up) --------------------------------------------------------------------------

nats_binary() {
  if [ -n "${FV_NATS_SERVER:-}" ]; then [ -x "$FV_NATS_SERVER" ] && echo "$FV_NATS_SERVER"; return; fi
  local p
  for p in /usr/sbin/nats-server /usr/bin/nats-server /usr/local/bin/nats-server; do
    [ -x "$p" ] && { echo "$p"; return; }
  done
  command -v nats-server || true
}

# free_ports COUNT: COUNT distinct free loopback ports, one a line.
free_ports() {
  local count=$1
  if [ -z "${PROBE_PORTS:-}" ] && command -v python3 >/dev/null; then
    # Every socket stays open until all ports are chosen, so none is handed out twice.
    python3 -c '
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$count" && return
  fi
  local port=$BASE_PORT found=0
  while [ $found -lt "$count" ] && [ "$port" -lt 65535 ]; do
    # Nothing answers a connect: free (as far as anyone can tell before binding it).
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; found=$((found + 1)); fi
    port=$((port + 1))
  done
  [ $found -eq "$count" ] || die "no $count free ports from $BASE_PORT"
}

log_tail() {  # FILE: its last lines, indented, on stderr
  [ -s "$1" ] || return 0
  echo "--- $1 (last lines)" >&2
  tail -n 15 "$1" | sed 's/^/    /' >&2
}

up_failed() {
  local rc=$?
  trap - EXIT INT TERM
  [ $rc -ne 0 ] || return 0
  echo "$me: up failed; stopping what was started (logs in $DIR/logs)" >&2
  down >&2 || true
  exit $rc
}

up() {
  case $NODES in ''|*[!0-9]*) die "up needs --nodes N (1 or more)" ;; esac
  [ "$NODES" -ge 1 ] || die "--nodes must be at least 1"
  case $SHARDS in ''|*[!0-9]*) die "--shards takes a number" ;; esac
  [ -x "$FV" ] || die "$FV is not built (make binary builds it; or pass --bin / FACEVAULT_BIN)"
  FV=$(cd "$(dirname "$FV")" && pwd)/$(basename "$FV")
  local nats
  nats=$(nats_binary)
  [ -n "$nats" ] || die "nats-server is missing (scripts/setup-deps.sh installs it; or set FV_NATS_SERVER)"
  case $DIR in *[[:space:]]*) die "--dir must not contain spaces (cluster.env lists folders separated by spaces)" ;; esac
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  [ -z "$(ls -A "$DIR")" ] ||
    die "$DIR is not empty (a cluster was made there?): \`$0 down --dir $DIR\`, remove it, or pick another --dir"
  trap up_failed EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$DIR/logs" "$DIR/nats" "$DIR/nodes"
  : > "$DIR/pids"

  # The cluster's two keys, the same on every node and CLI: the master key wraps every
  # subject key, the audit signing key (an Ed25519 seed) signs the audit checkpoints.
  local master signing
  master=$("$FV" key generate)
  signing=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  if [ ${#master} -ne 64 ] || [ ${#signing} -ne 64 ]; then die "could not generate the cluster keys"; fi
  (umask 077
   printf 'export FACEVAULT_MASTER_KEY=%s\nexport FACEVAULT_AUDIT_SIGNING_KEY=%s\n' "$master" "$signing" > "$DIR/keys.env")
  export FACEVAULT_MASTER_KEY=$master FACEVAULT_AUDIT_SIGNING_KEY=$signing

  # Ports: per server a client and a cluster port, per node an HTTP port.
  local ports i j
  mapfile -t ports < <(free_ports $((3 * NODES)))
  [ ${#ports[@]} -eq $((3 * NODES)) ] || die "could not find $((3 * NODES)) free loopback ports"
  local names=() client=() route=() http=() urls="" stores=() vaults=()
  for ((i = 0; i < NODES; i++)); do
    names+=("n$((i + 1))")
    client+=("${ports[3 * i]}")
    route+=("${ports[3 * i + 1]}")
    http+=("${ports[3 * i + 2]}")
    urls+="${urls:+,}nats://127.0.0.1:${ports[3 * i]}"
    stores+=("$DIR/nats/n$((i + 1))/store")
    vaults+=("$DIR/nodes/n$((i + 1))")
  done

  # The NATS servers: JetStream, one cluster (routes to every other server), loopback only.
  local conf routes pid nats_pids=()
  for ((i = 0; i < NODES; i++)); do
    mkdir -p "${stores[i]}"
    conf=$DIR/nats/${names[i]}/nats.conf
    {
      echo "server_name: ${names[i]}"
      echo "listen: 127.0.0.1:${client[i]}"
      echo "jetstream { store_dir: \"${stores[i]}\" }"
      # A photo sent to a node that does not host its subject's shard travels in one message:
      # room for the HTTP API's 16 MiB uploads, sealed (NATS's default is 1 MB).
      echo "max_payload: 24MB"
      if [ "$NODES" -gt 1 ]; then
        routes=""
        for ((j = 0; j < NODES; j++)); do
          [ $j -ne $i ] && routes+="${routes:+, }nats://127.0.0.1:${route[j]}"
        done
        echo "cluster { name: facevault, listen: 127.0.0.1:${route[i]}, routes: [ $routes ] }"
      fi
    } > "$conf"
    # setsid: not in the terminal's process group (Ctrl-C reaches `run`, which stops them in order).
    setsid "$nats" -c "$conf" < /dev/null >> "$DIR/logs/nats-${names[i]}.log" 2>&1 &
    pid=$!
    echo "nats $pid ${names[i]}" >> "$DIR/pids"
    nats_pids+=("$pid")
  done

  # The cluster: init is retried until JetStream has a leader and enough peers (it is
  # idempotent for the same shape).
  local replicas=$((NODES < 3 ? NODES : 3)) deadline=$((SECONDS + START_WAIT)) out=""
  echo "$me: $NODES nats-server(s) started ($urls); creating the cluster ($SHARDS shards, $replicas replica(s))…" >&2
  until out=$("$FV" cluster init --nats "$urls" --shards "$SHARDS" --replicas "$replicas" 2>&1); do
    for ((i = 0; i < NODES; i++)); do
      ours "${nats_pids[i]}" || { log_tail "$DIR/logs/nats-${names[i]}.log"; die "nats-server ${names[i]} exited"; }
    done
    [ $SECONDS -lt $deadline ] || { echo "$out" >&2; die "cluster init did not succeed within $START_WAIT s"; }
    sleep 1
  done
  echo "$out" > "$DIR/logs/cluster-init.log"

  # The nodes, one after the other: each is started once the one before it listens. Started
  # together they race to create the cluster's shared KV buckets and JetStream answers one of
  # them with a timeout (the node exits: "open KV bucket fv-refs: Timeout").
  local node_pids=() node_urls=() u
  for ((i = 0; i < NODES; i++)); do
    setsid "$FV" serve --cluster "$urls" --node "${names[i]}" --vault "${vaults[i]}" \
      --listen "127.0.0.1:${http[i]}" --json --quiet \
      < /dev/null > "$DIR/logs/node-${names[i]}.out" 2> "$DIR/logs/node-${names[i]}.log" &
    pid=$!
    echo "node $pid ${names[i]}" >> "$DIR/pids"
    node_pids+=("$pid")
    echo "$me: node ${names[i]} started (pid $pid); waiting for it to listen on 127.0.0.1:${http[i]}…" >&2
    deadline=$((SECONDS + START_WAIT))
    while :; do
      # The file may not exist yet (the shell that redirects into it may not have run yet).
      u=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$DIR/logs/node-${names[i]}.out" 2>/dev/null | head -n 1 || true)
      [ -z "$u" ] || break
      ours "$pid" || { log_tail "$DIR/logs/node-${names[i]}.log"; die "node ${names[i]} exited before listening"; }
      [ $SECONDS -lt $deadline ] || { log_tail "$DIR/logs/node-${names[i]}.log"; die "node ${names[i]} is not listening after $START_WAIT s"; }
      sleep 0.2
    done
    node_urls+=("${u%/}")
  done

  # One API key per role, cluster-wide (the meta stream), as `make run` gives them: the admin
  # and the investigator search for the demo purposes. Retried within KEY_WAIT: the first
  # writes can meet a stream leader election.
  local purposes=(--purpose access-control --purpose demo-investigation) who role key err
  declare -A keys
  deadline=$((SECONDS + KEY_WAIT))
  for who in admin enroller investigator auditor reviewer reviewer2; do
    role=${who%2}
    local p=()
    case $role in admin|investigator) p=("${purposes[@]}") ;; esac
    until key=$("$FV" cluster key create --nats "$urls" --role "$role" "${p[@]}" --label "cluster $who" \
                  --actor cluster-script 2>"$DIR/logs/key-create.err"); do
      err=$(cat "$DIR/logs/key-create.err")
      [ $SECONDS -lt $deadline ] || die "cluster key create --role $role failed: $err"
      echo "$me: cluster key create --role $role: $err (retrying)" >&2
      sleep 2
    done
    case $key in fvk_*) ;; *) die "cluster key create --role $role printed no key: $key" ;; esac
    keys[$who]=$key
  done
  rm -f "$DIR/logs/key-create.err"

  local env=$DIR/cluster.env
  var() {  # [export] NAME VALUE: one line of shell, the value single-quoted
    local e=""
    [ "$1" != export ] || { e="export "; shift; }
    printf "%s%s='%s'\n" "$e" "$1" "${2//\'/\'\\\'\'}"
  }
  (umask 077
   {
     echo "# The cluster of scripts/cluster.sh up, $(date -u +%FT%TZ). Source it: . $env"
     echo "# Stop it: scripts/cluster.sh down --dir $DIR"
     var export FACEVAULT_MASTER_KEY "$master"
     var export FACEVAULT_AUDIT_SIGNING_KEY "$signing"
     var CLUSTER_DIR "$DIR"
     var NATS_URLS "$urls"
     var NODE_NAMES "${names[*]}"
     var NODE_URLS "${node_urls[*]}"
     var NODE_PIDS "${node_pids[*]}"
     var NATS_PIDS "${nats_pids[*]}"
     var NATS_STORE_DIRS "${stores[*]}"
     var NODE_VAULT_DIRS "${vaults[*]}"
     var ADMIN_KEY "${keys[admin]}"
     var ENROLLER_KEY "${keys[enroller]}"
     var INVESTIGATOR_KEY "${keys[investigator]}"
     var AUDITOR_KEY "${keys[auditor]}"
     var REVIEWER_KEY "${keys[reviewer]}"
     var REVIEWER2_KEY "${keys[reviewer2]}"
   } > "$env.tmp" && mv "$env.tmp" "$env")
  trap - EXIT INT TERM
  echo "$me: cluster up in $DIR: $NODES node(s) on ${node_urls[*]}" >&2
}

# What `run` prints once the cluster is up.
# shellcheck disable=SC1091,SC2153  # the variables come from cluster.env
summary() {
  . "$DIR/cluster.env"
  local i=0 u
  echo "facevault cluster: $NODE_NAMES on NATS $NATS_URLS ($DIR)"
  for u in $NODE_URLS; do
    i=$((i + 1))
    echo "  node n$i   $u   (web UI $u/, API $u/v1)"
  done
  echo "API keys (valid on every node; also in $DIR/cluster.env):"
  printf '  %-13s %s\n' admin "$ADMIN_KEY" enroller "$ENROLLER_KEY" investigator "$INVESTIGATOR_KEY" \
    auditor "$AUDITOR_KEY" reviewer "$REVIEWER_KEY" reviewer-2 "$REVIEWER2_KEY"
  echo "In another shell: . $DIR/cluster.env; $FV cluster status --nats \"\$NATS_URLS\""
  echo "Logs: $DIR/logs/. Ctrl-C stops the cluster (scripts/cluster.sh down --dir $DIR)."
}

case $cmd in
  up) up ;;
  down)
    [ -d "$DIR" ] || die "no folder $DIR"
    DIR=$(cd "$DIR" && pwd -P)
    down
    ;;
  status)
    [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (no cluster.env)"
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
    [ -x "$FV" ] || die "$FV is not built (or pass --bin / FACEVAULT_BIN)"
    exec "$FV" cluster status --nats "$NATS_URLS"
    ;;
  run)
    up
    summary
    stopping=""
    on_stop() { [ -n "$stopping" ] && return; stopping=1; echo; echo "$me: stopping…"; down; exit 0; }
    trap on_stop INT TERM
    # Until Ctrl-C, or until one of the processes exits (it is reported, then all are stopped).
    while :; do
      while read -r kind pid name; do
        if ! ours "$pid"; then
          echo "$me: $kind $name (pid $pid) exited; stopping the cluster" >&2
          log_tail "$DIR/logs/${kind}-${name}.log"
          trap - INT TERM
          down
          exit 1
        fi
      done < "$DIR/pids"
      sleep 1 & wait $! || true
    done
    ;;
esac
