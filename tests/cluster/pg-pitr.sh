#!/usr/bin/env bash
# A private PostgreSQL server with WAL archiving, and point-in-time restores of it, for the
# point-in-time test (tests/integration/pitr.rs). It never touches the shared server on 5432.
#
#   tests/cluster/pg-pitr.sh up            start the archiving server (idempotent)
#   tests/cluster/pg-pitr.sh basebackup    take a base backup of it (pg_basebackup), replacing any
#   tests/cluster/pg-pitr.sh archive       switch to a new WAL file and wait until the finished
#                                          one is in the archive
#   tests/cluster/pg-pitr.sh restore TIME  restore the base backup into a new data directory,
#                                          replay the archive up to TIME (recovery_target_time,
#                                          e.g. '2026-11-28 05:50:01.123456+00'), promote it and
#                                          start it on port + 1
#   tests/cluster/pg-pitr.sh down          stop both servers and remove their data
#
# Port: $CUSTODIAN_PG_PITR_PORT (default 25470; the restored copy uses the next port), below
# Linux's ephemeral range. Data and the WAL archive on /dev/shm. Runs the servers as user
# postgres when started by root. Every wait has a timeout.
set -euo pipefail

port=${CUSTODIAN_PG_PITR_PORT:-25470}
rport=$((port + 1))
top=/dev/shm/custodian-pg-pitr-$port
primary=$top/primary
archive=$top/archive
base=$top/base
restored=$top/restored
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bin" ] || { echo "error: no PostgreSQL server binaries under /usr/lib/postgresql; install them with: apt-get install -y postgresql" >&2; exit 1; }

die() { echo "pg-pitr.sh: $*" >&2; exit 1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
running() { as_pg "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; }
sql() { as_pg "$bin/psql" -X -q -t -A -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }
start() { # dir
  # 9>&-: the server must not inherit (and so hold) the rig lock.
  as_pg "$bin/pg_ctl" -D "$1" -l "$1/server.log" -w -t 60 start >/dev/null 9>&- || {
    tail -n 20 "$1/server.log" >&2 || true
    die "the server in $1 did not start"
  }
}
stop() { if [ -f "$1/PG_VERSION" ] && running "$1"; then as_pg "$bin/pg_ctl" -D "$1" -m immediate -w -t 60 stop >/dev/null || true; fi; }

up() {
  if [ -f "$primary/PG_VERSION" ] && running "$primary"; then return 0; fi
  if [ ! -f "$primary/PG_VERSION" ]; then
    rm -rf "$top"
    mkdir -p "$primary" "$archive"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$top"
    chmod 700 "$primary"
    as_pg "$bin/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    cat >>"$primary/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$primary'
max_connections = 40
shared_buffers = 32MB
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $archive/%f && cp %p $archive/%f'
CONF
  fi
  start "$primary"
}

basebackup() {
  up
  rm -rf "$base"
  as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$base" -c fast -X stream \
    >/dev/null 2>&1 || die "pg_basebackup failed"
}

archive() {
  local wal i=0
  wal=$(sql "$port" "SELECT pg_walfile_name(pg_switch_wal())")
  until [ -f "$archive/$wal" ]; do
    i=$((i + 1)); [ "$i" -le 300 ] || die "WAL file $wal not archived within 30s"
    sleep 0.1
  done
}

restore() { # time
  [ -n "${1:-}" ] || die "restore needs a TIME"
  [ -f "$base/PG_VERSION" ] || die "no base backup (run: pg-pitr.sh basebackup)"
  stop "$restored"
  rm -rf "$restored"
  cp -a "$base" "$restored"
  rm -f "$restored/postmaster.pid"
  # The base backup carries the primary's settings: the copy listens elsewhere, archives
  # nothing, and replays the archive up to the target, then becomes a primary.
  cat >>"$restored/postgresql.conf" <<CONF
port = $rport
unix_socket_directories = '$restored'
archive_mode = off
restore_command = 'cp $archive/%f %p'
recovery_target_time = '$1'
recovery_target_action = 'promote'
CONF
  as_pg touch "$restored/recovery.signal"
  start "$restored"
  local i=0
  until [ "$(sql "$rport" "SELECT pg_is_in_recovery()" 2>/dev/null)" = f ]; do
    i=$((i + 1)); [ "$i" -le 600 ] || die "the restored server did not finish recovery within 60s (log: $restored/server.log)"
    sleep 0.1
  done
}

exec 9>"/tmp/custodian-pg-pitr-$port.lock"
flock -w 120 9 || die "timed out waiting for the rig lock"
case "${1:-}" in
  up) up ;;
  basebackup) basebackup ;;
  archive) archive ;;
  restore) restore "${2:-}" ;;
  down) stop "$restored"; stop "$primary"; rm -rf "$top" ;;
  *) die "usage: $0 up|basebackup|archive|restore TIME|down" ;;
esac
