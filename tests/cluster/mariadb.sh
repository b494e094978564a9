#!/usr/bin/env bash
# Private MariaDB rig for the cluster tests: a primary and one GTID replica
# (MASTER_USE_GTID=slave_pos, read_only=1), data under /dev/shm, ports of their own, run as user
# mysql with their own sockets. Never touches the shared server on 3306. Applications write
# through the non-root user `app` (password `app`): root ignores read_only.
#
#   mariadb.sh up | down | stop PORT | start PORT
#   mariadb.sh promote PORT      make the replica a primary: it applies everything its IO thread
#                                received first, then replication reset, read_only off
#   mariadb.sh kill PORT         SIGKILL the node
#   mariadb.sh freeze PORT | thaw PORT   SIGSTOP / SIGCONT the node
#   mariadb.sh semisync          lossless semi-synchronous replication (AFTER_SYNC): a commit
#                                is acknowledged once the replica received it
#   mariadb.sh lag-on PORT [S]   delay the replica's SQL thread (MASTER_DELAY, default 2 s)
#   mariadb.sh lag-off PORT
#   mariadb.sh pause PORT | resume PORT   stop / start the replica's SQL thread
#   mariadb.sh heal              up, and the replica replicating without delay (after a test)
#
# Ports: CUSTODIAN_MARIADB_RIG_PORT (primary, default 23061) and the next one for the replica.
# The ports lie below Linux's ephemeral range (32768-60999): a client socket of the test
# suite can never hold them when a server starts.
set -euo pipefail

BASE=${CUSTODIAN_MARIADB_RIG_DIR:-/dev/shm/custodian-mariadb-rig}
P0=${CUSTODIAN_MARIADB_RIG_PORT:-23061}
P1=$((P0 + 1))
LOCK=$BASE.lock

die() { echo "mariadb.sh: $*" >&2; exit 1; }
dir() { echo "$BASE/n$1"; }
q() { mariadb --protocol=socket -S "$(dir "$1")/sock" -u root -N -B -e "$2"; }
pid_of() { cat "$(dir "$1")/pid" 2>/dev/null || true; }
running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start_node() {
  local port=$1 id=$(( $1 - P0 + 1 )) d; d=$(dir "$1")
  running "$port" && return 0
  runuser -u mysql -- /usr/sbin/mariadbd --no-defaults --datadir="$d/data" --port="$port" \
    --bind-address=127.0.0.1 --socket="$d/sock" --pid-file="$d/pid" --log-error="$d/err" \
    --server-id="$id" --log-bin=bin --log-slave-updates --binlog-format=ROW \
    --gtid-strict-mode=1 --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
    --innodb-flush-log-at-trx-commit=0 --sync-binlog=0 --skip-name-resolve \
    --max-connections=80 --performance-schema=0 --transaction-isolation=REPEATABLE-READ \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    $([ "$port" = "$P0" ] || echo --read-only=1) >/dev/null 2>&1 9>&- &
  local i=0
  until q "$port" "select 1" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -le 600 ] || die "node $port not ready within 60s (log: $d/err)"
    sleep 0.1
  done
}

stop_node() {
  local port=$1 p i=0; p=$(pid_of "$port")
  running "$port" || return 0
  kill "$p"
  while kill -0 "$p" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 300 ] || { kill -9 "$p" 2>/dev/null || true; break; }
    sleep 0.1
  done
}

make_node() {
  local d; d=$(dir "$1")
  mkdir -p "$d"; chown mysql "$d"
  runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$d/data" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null 2>&1 || die "mariadb-install-db for $1 failed"
  start_node "$1"
}

up() {
  mkdir -p "$BASE"; chmod 755 "$BASE"
  if [ ! -d "$(dir "$P0")" ]; then
    make_node "$P0"
    # `all` includes READ_ONLY ADMIN, which lets a user write despite read_only: revoked, so
    # `app` is held to read_only on the replica.
    q "$P0" "create user 'repl'@'127.0.0.1' identified by 'repl'; grant replication slave on *.* to 'repl'@'127.0.0.1';
             create user 'app'@'%' identified by 'app'; grant all on *.* to 'app'@'%';
             revoke read_only admin on *.* from 'app'@'%'"
  fi
  start_node "$P0"
  if [ ! -d "$(dir "$P1")" ]; then
    make_node "$P1"
    q "$P1" "change master to master_host='127.0.0.1', master_port=$P0, master_user='repl', master_password='repl',
             master_use_gtid=slave_pos, master_connect_retry=1; start slave"
  fi
  start_node "$P1"
  # A test that failed half-way may have left replication stopped (pause): resume it.
  q "$P1" "start slave" >/dev/null 2>&1 || true
  local i=0
  until [ "$(mariadb --protocol=socket -S "$(dir "$P1")/sock" -u root -e "show slave status\G" | grep -cE 'Slave_(SQL|IO)_Running: Yes')" = 2 ] \
        && q "$P1" "select user from mysql.user where user = 'app'" | grep -q app; do
    i=$((i + 1)); [ "$i" -le 600 ] || die "replica not replicating within 60s (log: $(dir "$P1")/err)"
    sleep 0.1
  done
}

down() {
  for p in "$P1" "$P0"; do
    local pid; pid=$(pid_of "$p")
    [ -n "$pid" ] && running "$p" && kill_node "$p" || true
  done
  rm -rf "$BASE"
}

# A stopped mariadbd stops the runuser that started it (job control), which then cannot reap
# it: the parent is continued too.
kill_node() {
  local p pp i=0; p=$(pid_of "$1")
  running "$1" || return 0
  pp=$(ps -o ppid= -p "$p" | tr -d ' ')
  kill -9 "$p"
  [ -z "$pp" ] || [ "$pp" = 1 ] || kill -CONT "$pp" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 300 ] || die "node $1 still running 30s after SIGKILL"
    sleep 0.1
  done
}

# The replica applies what its IO thread received (at most 30 s), then becomes a primary.
promote() {
  local io
  q "$1" "stop slave io_thread"
  io=$(mariadb --protocol=socket -S "$(dir "$1")/sock" -u root -e "show slave status\G" | sed -n 's/^ *Gtid_IO_Pos: *//p')
  if [ -n "$io" ]; then
    [ "$(q "$1" "select master_gtid_wait('$io', 30)")" = 0 ] || die "replica $1 did not apply $io within 30s"
  fi
  q "$1" "stop slave; reset slave all; set global read_only = 0"
}

semisync() {
  q "$P0" "set global rpl_semi_sync_master_wait_point = AFTER_SYNC; set global rpl_semi_sync_master_timeout = 60000; set global rpl_semi_sync_master_enabled = 1"
  q "$P1" "set global rpl_semi_sync_slave_enabled = 1; stop slave io_thread; start slave io_thread"
  local i=0
  until [ "$(q "$P0" "select variable_value from information_schema.global_status where variable_name = 'RPL_SEMI_SYNC_MASTER_CLIENTS'")" = 1 ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || die "the replica did not register as semi-sync within 30s"
    sleep 0.1
  done
}

need_port() { [ -n "${1:-}" ] || die "$cmd needs a PORT"; [ -d "$(dir "$1")" ] || die "no node on port $1 (run: mariadb.sh up)"; }

cmd=${1:-}
[ "$(id -u)" = 0 ] || die "run as root (it runs the servers as user mysql through runuser)"
exec 9>"$LOCK"
flock -w 120 9 || die "another mariadb.sh held the lock for 120s"
case "$cmd" in
  up) up ;;
  promote) need_port "${2:-}"; promote "$2" ;;
  kill) need_port "${2:-}"; kill_node "$2" ;;
  freeze) need_port "${2:-}"; p=$(pid_of "$2"); [ -z "$p" ] || kill -STOP "$p" ;;
  thaw)
    need_port "${2:-}"; p=$(pid_of "$2")
    [ -z "$p" ] || { kill -CONT "$p"; pp=$(ps -o ppid= -p "$p" | tr -d ' '); [ -z "$pp" ] || [ "$pp" = 1 ] || kill -CONT "$pp"; } ;;
  semisync) semisync ;;
  heal) up; q "$P1" "stop slave; change master to master_delay=0; start slave" ;;
  down) down ;;
  stop) need_port "${2:-}"; stop_node "$2" ;;
  start) need_port "${2:-}"; start_node "$2" ;;
  lag-on) need_port "${2:-}"; q "$2" "stop slave; change master to master_delay=${3:-2}; start slave" ;;
  lag-off) need_port "${2:-}"; q "$2" "stop slave; change master to master_delay=0; start slave" ;;
  pause) need_port "${2:-}"; q "$2" "stop slave sql_thread" ;;
  resume) need_port "${2:-}"; q "$2" "start slave sql_thread" ;;
  *) die "usage: mariadb.sh up|down|heal|semisync|stop PORT|start PORT|promote PORT|kill PORT|freeze PORT|thaw PORT|lag-on PORT [S]|lag-off PORT|pause PORT|resume PORT" ;;
esac
