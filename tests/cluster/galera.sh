#!/usr/bin/env bash
# Private MariaDB Galera rig for the cluster tests: three nodes of one Galera cluster (rsync SST),
# data under /dev/shm, ports of their own, run as user mysql with their own sockets. Never touches
# the shared server on 3306. Applications connect as the user `app` (password `app`).
#
#   galera.sh up | down | stop PORT | start PORT | kill PORT
#   galera.sh freeze PORT | thaw PORT   SIGSTOP / SIGCONT the node
#
# Ports: CUSTODIAN_GALERA_RIG_PORT (first node's SQL port, default 24061) and the next two for the
# other nodes; node i also uses SQL port +10 (group communication), +20 (IST) and +30 (SST). All lie
# below Linux's ephemeral range (32768-60999): a client socket can never hold them when a node starts.
# `up` bootstraps a fresh cluster unless all three nodes are already running; `start` rejoins a
# stopped node to the running ones (IST from the gcache).
set -euo pipefail

BASE=${CUSTODIAN_GALERA_RIG_DIR:-/dev/shm/custodian-galera-rig}
P0=${CUSTODIAN_GALERA_RIG_PORT:-24061}
PORTS="$P0 $((P0 + 1)) $((P0 + 2))"
LOCK=$BASE.lock
PROVIDER=/usr/lib/galera/libgalera_smm.so

die() { echo "galera.sh: $*" >&2; exit 1; }
dir() { echo "$BASE/n$1"; }
q() { mariadb --protocol=socket -S "$(dir "$1")/sock" -u root -N -B -e "$2"; }
pid_of() { cat "$(dir "$1")/pid" 2>/dev/null || true; }
running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
synced() { [ "$(q "$1" "select variable_value from information_schema.global_status where variable_name = 'wsrep_local_state'" 2>/dev/null)" = 4 ]; }

start_node() {
  local port=$1 bootstrap=${2:-} d; d=$(dir "$1")
  running "$port" && return 0
  local peers="" p
  for p in $PORTS; do peers="$peers${peers:+,}127.0.0.1:$((p + 10))"; done
  # The rsync SST script runs rsync and its helpers from PATH.
  runuser -u mysql -- env PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/sbin/mariadbd --no-defaults \
    --datadir="$d/data" --port="$port" --bind-address=127.0.0.1 --socket="$d/sock" \
    --pid-file="$d/pid" --log-error="$d/err" --innodb-buffer-pool-size=32M \
    --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=0 --skip-name-resolve \
    --max-connections=80 --performance-schema=0 --binlog-format=ROW \
    --innodb-autoinc-lock-mode=2 --default-storage-engine=InnoDB \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --wsrep-on=ON --wsrep-provider="$PROVIDER" --wsrep-cluster-name=custodian \
    --wsrep-cluster-address="gcomm://$peers" --wsrep-node-name="n$port" \
    --wsrep-node-address="127.0.0.1:$((port + 10))" \
    --wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$((port + 10));ist.recv_addr=127.0.0.1:$((port + 20));gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S" \
    --wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$((port + 30))" \
    $bootstrap >/dev/null 2>&1 9>&- &
  local i=0
  until synced "$port"; do
    i=$((i + 1)); [ "$i" -le 900 ] || die "node $port not synced within 90s (log: $d/err)"
    sleep 0.1
  done
}

stop_node() {
  local port=$1 sig=${2:-TERM} p pp i=0; p=$(pid_of "$port")
  running "$port" || return 0
  pp=$(ps -o ppid= -p "$p" | tr -d ' ')
  kill -"$sig" "$p"
  # A frozen node stopped the runuser that started it (job control), which then cannot reap
  # it: the parent is continued too.
  [ -z "$pp" ] || [ "$pp" = 1 ] || kill -CONT "$pp" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 300 ] || { kill -9 "$p" 2>/dev/null || true; break; }
    sleep 0.1
  done
}

make_dir() {
  local d; d=$(dir "$1")
  mkdir -p "$d"; chown mysql "$d"
  runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null 2>&1 || die "mariadb-install-db for $1 failed"
}

up() {
  local p all=1
  for p in $PORTS; do running "$p" && synced "$p" || all=0; done
  [ "$all" = 1 ] && return 0
  down
  mkdir -p "$BASE"; chmod 755 "$BASE"
  for p in $PORTS; do make_dir "$p"; done
  start_node "$P0" --wsrep-new-cluster
  q "$P0" "create user 'app'@'%' identified by 'app'; grant all on *.* to 'app'@'%'"
  for p in $PORTS; do [ "$p" = "$P0" ] || start_node "$p"; done
}

down() {
  local p pid
  for p in $PORTS; do
    pid=$(pid_of "$p")
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$BASE"
}

need_port() { [ -n "${1:-}" ] || die "$cmd needs a PORT"; [ -d "$(dir "$1")" ] || die "no node on port $1 (run: galera.sh up)"; }

cmd=${1:-}
[ "$(id -u)" = 0 ] || die "run as root (it runs the servers as user mysql through runuser)"
[ -f "$PROVIDER" ] || die "no Galera provider at $PROVIDER (install it: apt-get install -y galera-4 rsync)"
exec 9>"$LOCK"
flock -w 120 9 || die "another galera.sh held the lock for 120s"
case "$cmd" in
  up) up ;;
  down) down ;;
  stop) need_port "${2:-}"; stop_node "$2" ;;
  kill) need_port "${2:-}"; stop_node "$2" KILL ;;
  start) need_port "${2:-}"; start_node "$2" ;;
  freeze) need_port "${2:-}"; p=$(pid_of "$2"); [ -z "$p" ] || kill -STOP "$p" ;;
  thaw)
    need_port "${2:-}"; p=$(pid_of "$2")
    [ -z "$p" ] || { kill -CONT "$p"; pp=$(ps -o ppid= -p "$p" | tr -d ' '); [ -z "$pp" ] || [ "$pp" = 1 ] || kill -CONT "$pp"; } ;;
  *) die "usage: galera.sh up|down|stop PORT|kill PORT|start PORT|freeze PORT|thaw PORT" ;;
esac
