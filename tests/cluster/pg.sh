#!/usr/bin/env bash
# Private PostgreSQL 15 rig for the cluster tests: a primary and two streaming replicas (hot
# standby, made with pg_basebackup -R), data under /dev/shm, ports of their own. Never touches
# the shared server on 5432.
#
#   pg.sh up                 start the rig (idempotent, safe to run concurrently: flock)
#   pg.sh down               stop every node and remove the data
#   pg.sh stop PORT | start PORT
#   pg.sh promote PORT       promote a replica (pg_promote, waits for it); the other running
#                            replicas are pointed at it (they follow its new timeline)
#   pg.sh kill PORT          SIGKILL the node's postmaster and every process it started
#   pg.sh freeze PORT | thaw PORT   SIGSTOP / SIGCONT the node's postmaster and its processes
#   pg.sh rejoin PORT        make a lost primary a replica of the current primary: CHECKPOINT
#                            on the primary, pg_rewind, start it as a standby
#   pg.sh primary            print the port of the running node that is not in recovery
#   pg.sh lag-on PORT [MS]   delay replay on a replica (recovery_min_apply_delay, default 1500)
#   pg.sh lag-off PORT
#   pg.sh pause PORT | resume PORT   pause / resume WAL replay on a replica
#   pg.sh heal               up, and every replica replaying without delay (after a test)
#
# Ports: CUSTODIAN_PG_RIG_PORT (primary, default 25432) and the next two for the replicas.
# The ports lie below Linux's ephemeral range (32768-60999): a client socket of the test
# suite can never hold them when a server starts.
# Every wait has a timeout; a failure exits non-zero with what went wrong.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
BASE=${CUSTODIAN_PG_RIG_DIR:-/dev/shm/custodian-pg-rig}
P0=${CUSTODIAN_PG_RIG_PORT:-25432}
P1=$((P0 + 1))
P2=$((P0 + 2))
LOCK=$BASE.lock

as_pg() { runuser -u postgres -- "$@"; }
die() { echo "pg.sh: $*" >&2; exit 1; }
dir() { echo "$BASE/n$1"; }
q() { as_pg psql -X -q -t -A -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
running() { [ -f "$(dir "$1")/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$(dir "$1")" status >/dev/null 2>&1; }

# Waits up to $2 seconds for the server on port $1 to accept connections.
wait_ready() {
  local port=$1 limit=${2:-60} i=0
  while ! as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    i=$((i + 1)); [ "$i" -le $((limit * 10)) ] || die "server on port $port not ready within ${limit}s (log: $(dir "$port")/log)"
    sleep 0.1
  done
}

start_node() {
  local port=$1
  running "$port" && return 0
  as_pg "$BIN/pg_ctl" -D "$(dir "$port")" -l "$(dir "$port")/log" -w -t 60 \
    -o "-p $port -k $BASE -c listen_addresses=127.0.0.1" start >/dev/null 9>&- \
    || die "could not start node $port (log: $(dir "$port")/log)"
  wait_ready "$port" 60
}

stop_node() {
  local port=$1
  running "$port" || return 0
  as_pg "$BIN/pg_ctl" -D "$(dir "$port")" -m fast -w -t 60 stop >/dev/null || die "could not stop node $port"
}

make_primary() {
  local d; d=$(dir "$P0")
  as_pg "$BIN/initdb" -D "$d" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$d/postgresql.conf" <<CONF
fsync = off
synchronous_commit = off
full_page_writes = on
wal_log_hints = on
synchronous_standby_names = 'ANY 1 (*)'
wal_retrieve_retry_interval = 100ms
wal_level = replica
max_wal_senders = 10
hot_standby = on
hot_standby_feedback = on
wal_keep_size = 256MB
shared_buffers = 32MB
max_connections = 60
wal_receiver_status_interval = 1s
CONF
  echo "host replication all 127.0.0.1/32 trust" >>"$d/pg_hba.conf"
  start_node "$P0"
}

make_replica() {
  local port=$1 d; d=$(dir "$port")
  as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$P0" -U postgres -D "$d" -R -X stream --no-sync >/dev/null \
    || die "pg_basebackup for $port failed"
  start_node "$port"
}

up() {
  mkdir -p "$BASE"; chown postgres "$BASE"
  [ -d "$(dir "$P0")" ] || make_primary
  start_node "$P0"
  for p in "$P1" "$P2"; do
    if [ -d "$(dir "$p")" ]; then start_node "$p"; else make_replica "$p"; fi
  done
  # Both replicas streaming before the rig counts as up.
  local i=0
  until [ "$(q "$P0" "select count(*) from pg_stat_replication where state = 'streaming'")" = 2 ]; do
    i=$((i + 1)); [ "$i" -le 600 ] || die "replicas not streaming within 60s"
    sleep 0.1
  done
}

down() {
  for p in "$P2" "$P1" "$P0"; do
    [ -d "$(dir "$p")" ] || continue
    signal_node "$p" CONT
    as_pg "$BIN/pg_ctl" -D "$(dir "$p")" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    kill_node "$p"
  done
  rm -rf "$BASE"
}

# The postmaster's pid and every process it started.
pids_of() {
  local pm; pm=$(head -n1 "$(dir "$1")/postmaster.pid" 2>/dev/null) || return 0
  [ -n "$pm" ] && kill -0 "$pm" 2>/dev/null || return 0
  echo "$pm"; ps -o pid= --ppid "$pm" || true
}

# Sends signal $2 to the node on port $1 (postmaster first, so it starts nothing new).
signal_node() {
  local p; for p in $(pids_of "$1"); do kill "-$2" "$p" 2>/dev/null || true; done
}

kill_node() {
  local pids i=0; pids=$(pids_of "$1")
  [ -n "$pids" ] || return 0
  signal_node "$1" KILL
  for p in $pids; do
    while kill -0 "$p" 2>/dev/null; do
      i=$((i + 1)); [ "$i" -le 300 ] || die "node $1 still running 30s after SIGKILL"
      sleep 0.1
    done
  done
}

in_recovery() { [ "$(q "$1" "select pg_is_in_recovery()" 2>/dev/null)" = t ]; }

current_primary() {
  local p; for p in "$P0" "$P1" "$P2"; do
    running "$p" && [ "$(q "$p" "select pg_is_in_recovery()" 2>/dev/null)" = f ] && { echo "$p"; return 0; }
  done
  die "no running node is a primary"
}

promote() {
  local port=$1 p
  [ "$(q "$port" "select pg_promote(true, 30)")" = t ] || die "promotion of $port failed"
  for p in "$P0" "$P1" "$P2"; do
    [ "$p" != "$port" ] && running "$p" && in_recovery "$p" || continue
    q "$p" "alter system set primary_conninfo = 'host=127.0.0.1 port=$port user=postgres'" \
      && q "$p" "select pg_reload_conf()" >/dev/null
  done
}

rejoin() {
  local port=$1 primary d; d=$(dir "$port")
  primary=$(current_primary)
  [ "$primary" != "$port" ] || die "$port is the primary; nothing to rejoin"
  if running "$port"; then stop_node "$port"; fi
  kill_node "$port"
  q "$primary" "checkpoint" >/dev/null
  as_pg "$BIN/pg_rewind" -D "$d" -R --no-sync \
    --source-server="host=127.0.0.1 port=$primary user=postgres dbname=postgres" >"$d/rewind.log" 2>&1 \
    || die "pg_rewind of $port from $primary failed (log: $d/rewind.log)"
  start_node "$port"
  in_recovery "$port" || die "$port did not come back as a standby"
}

need_port() { [ -n "${1:-}" ] || die "$cmd needs a PORT"; [ -d "$(dir "$1")" ] || die "no node on port $1 (run: pg.sh up)"; }

cmd=${1:-}
[ "$(id -u)" = 0 ] || die "run as root (it runs the servers as user postgres through runuser)"
exec 9>"$LOCK"
flock -w 120 9 || die "another pg.sh held the lock for 120s"
case "$cmd" in
  up) up ;;
  heal)
    up
    for p in "$P1" "$P2"; do
      q "$p" "alter system reset recovery_min_apply_delay" && q "$p" "select pg_reload_conf(), pg_wal_replay_resume()" >/dev/null
    done ;;
  down) down ;;
  stop) need_port "${2:-}"; stop_node "$2" ;;
  start) need_port "${2:-}"; start_node "$2" ;;
  promote) need_port "${2:-}"; promote "$2" ;;
  kill) need_port "${2:-}"; kill_node "$2" ;;
  freeze) need_port "${2:-}"; signal_node "$2" STOP ;;
  thaw) need_port "${2:-}"; signal_node "$2" CONT ;;
  rejoin) need_port "${2:-}"; rejoin "$2" ;;
  primary) current_primary ;;
  lag-on)
    need_port "${2:-}"
    q "$2" "alter system set recovery_min_apply_delay = '${3:-1500}ms'" && q "$2" "select pg_reload_conf()" >/dev/null ;;
  lag-off)
    need_port "${2:-}"
    q "$2" "alter system reset recovery_min_apply_delay" && q "$2" "select pg_reload_conf()" >/dev/null ;;
  pause) need_port "${2:-}"; q "$2" "select pg_wal_replay_pause()" >/dev/null ;;
  resume) need_port "${2:-}"; q "$2" "select pg_wal_replay_resume()" >/dev/null ;;
  *) die "usage: pg.sh up|down|heal|primary|stop PORT|start PORT|promote PORT|kill PORT|freeze PORT|thaw PORT|rejoin PORT|lag-on PORT [MS]|lag-off PORT|pause PORT|resume PORT" ;;
esac
