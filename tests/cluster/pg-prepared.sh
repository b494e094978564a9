#!/usr/bin/env bash
# A private PostgreSQL server that can prepare transactions (max_prepared_transactions = 20),
# for the coordinated-transaction tests. It never touches the shared server on 5432.
#
#   tests/cluster/pg-prepared.sh up        start it (idempotent; creates it on first use)
#   tests/cluster/pg-prepared.sh restart   stop it as a crash would (immediate) and start it
#   tests/cluster/pg-prepared.sh down      stop it and remove its data
#
# Port: $CUSTODIAN_PG_PREPARED_PORT (default 25450), below Linux's ephemeral range
# (32768-60999), so no client socket of the test suite can hold it when the server starts.
# Data on /dev/shm (a tmpfs: fast, and gone with the machine). Runs the server as user postgres when started by root. Every wait has a
# timeout.
set -euo pipefail

port=${CUSTODIAN_PG_PREPARED_PORT:-25450}
dir=/dev/shm/custodian-pg-prepared-$port
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
if [ -z "$bin" ]; then
  echo "error: no PostgreSQL server binaries under /usr/lib/postgresql; install them with: apt-get install -y postgresql" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; }

start() {
  # 9>&-: the server must not inherit (and so hold) the rig lock.
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null 9>&- || {
    echo "error: the private PostgreSQL on port $port did not start; its log:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
  }
}

up() {
  if running; then return 0; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    cat >>"$dir/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_prepared_transactions = 20
max_connections = 80
shared_buffers = 32MB
fsync = off
CONF
  fi
  start
}

# One caller at a time: the tests call `up` from several threads and processes.
exec 9>"/tmp/custodian-pg-prepared-$port.lock"
flock -w 120 9 || { echo "error: timed out waiting for the rig lock" >&2; exit 1; }

case "${1:-}" in
  up) up ;;
  restart)
    up
    as_pg "$bin/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null
    start
    ;;
  down)
    if running; then as_pg "$bin/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 up|restart|down" >&2
    exit 2
    ;;
esac
