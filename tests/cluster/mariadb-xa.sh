#!/usr/bin/env bash
# A private MariaDB server for the test of a prepared XA branch across a server restart. It
# never touches the shared server on 3306. Runs as user mysql (started by root), data on
# /dev/shm, every wait with a timeout.
#
#   tests/cluster/mariadb-xa.sh up        start it (idempotent; creates it on first use)
#   tests/cluster/mariadb-xa.sh crash     SIGKILL the server (no shutdown), then start it
#   tests/cluster/mariadb-xa.sh restart   shut it down cleanly, then start it
#   tests/cluster/mariadb-xa.sh down      stop it and remove its data
#
# Port: $CUSTODIAN_MARIADB_XA_PORT (default 25480), below Linux's ephemeral range. The binary
# log is on (`--log-bin`, as on a server that replicates): then MariaDB keeps prepared XA
# branches in the binary log too, and recovers them from there and from InnoDB after a crash.
# Durable settings (`innodb_flush_log_at_trx_commit=1`, `sync_binlog=1`): a prepared branch
# survives a crash only if the server made its PREPARE durable.
set -euo pipefail

port=${CUSTODIAN_MARIADB_XA_PORT:-25480}
d=/dev/shm/custodian-mariadb-xa-$port

die() { echo "mariadb-xa.sh: $*" >&2; exit 1; }
q() { mariadb --protocol=socket -S "$d/sock" -u root -N -B -e "$1"; }
pid() { cat "$d/pid" 2>/dev/null || true; }
running() { local p; p=$(pid); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start() {
  running && return 0
  # 9>&-: the server must not inherit (and so hold) the rig lock.
  runuser -u mysql -- /usr/sbin/mariadbd --no-defaults --datadir="$d/data" --port="$port" \
    --bind-address=127.0.0.1 --socket="$d/sock" --pid-file="$d/pid" --log-error="$d/err" \
    --server-id=1 --log-bin=bin --binlog-format=ROW --innodb-buffer-pool-size=32M \
    --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=1 --sync-binlog=1 \
    --skip-name-resolve --max-connections=80 --performance-schema=0 \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    >/dev/null 2>&1 9>&- &
  local i=0
  until q "select 1" >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -le 600 ] || die "not ready within 60s (log: $d/err)"
    sleep 0.1
  done
}

wait_gone() { # pid
  local i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -le 300 ] || die "server $1 did not stop within 30s"
    sleep 0.1
  done
}

up() {
  if [ ! -d "$d/data/mysql" ]; then
    rm -rf "$d"; mkdir -p "$d"; chown mysql "$d"
    runuser -u mysql -- mariadb-install-db --no-defaults --datadir="$d/data" \
      --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1 \
      || die "mariadb-install-db failed"
  fi
  start
}

[ "$(id -u)" = 0 ] || die "run as root (it runs the server as user mysql through runuser)"
exec 9>"/tmp/custodian-mariadb-xa-$port.lock"
flock -w 120 9 || die "timed out waiting for the rig lock"
case "${1:-}" in
  up) up ;;
  crash) up; p=$(pid); kill -9 "$p"; wait_gone "$p"; start ;;
  restart) up; p=$(pid); kill "$p"; wait_gone "$p"; start ;;
  down)
    p=$(pid); if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; wait_gone "$p"; fi
    rm -rf "$d"
    ;;
  *) die "usage: $0 up|crash|restart|down" ;;
esac
