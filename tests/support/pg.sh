#!/usr/bin/env bash
# Runs a command against a PostgreSQL server of its own: a temporary data
# directory, listening only on a Unix socket in that directory (no TCP port
# to collide with), stopped and removed at the end, whatever the command does.
# Usage: tests/support/pg.sh COMMAND [ARGS...]
# The command gets NRD_TEST_PG_HOST (the socket's directory), NRD_TEST_PG_PORT,
# NRD_TEST_PG_USER (a superuser, trust authentication), NRD_TEST_PG_RESTART
# (a script that restarts the server, ending every session), and
# NRD_TEST_PG_STOP / NRD_TEST_PG_START (scripts that stop it, and start it
# again, for a test of the time it is away). NRD_PG_FSYNC=on runs the server
# with fsync (the benchmark; tests leave it off). Exits 77 (skip)
# only when PostgreSQL's server programs are not installed.
set -euo pipefail

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ] && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
  bindir=$(dirname "$(command -v initdb)")
fi
if [ -z "$bindir" ]; then
  echo "pg.sh: PostgreSQL's server (initdb, pg_ctl) is not installed: skipped" >&2
  exit 77
fi

# In /tmp: a short path (a Unix socket's path has at most 107 bytes) that
# the server's user can reach.
tmp=$(mktemp -d /tmp/nrd-pg.XXXXXX)
chmod 755 "$tmp"
port=5432
# initdb refuses to run as root: the server then runs as nobody.
as_server=()
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$tmp"
  as_server=(runuser -u nobody --)
fi

stop() {
  rc=$?
  (cd "$tmp" && "${as_server[@]}" "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop \
     >/dev/null 2>&1) || true
  rm -rf "$tmp"
  exit $rc
}
trap stop EXIT INT TERM

cd "$tmp"
"${as_server[@]}" "$bindir/initdb" -D "$tmp/data" -U nrd -A trust -E UTF8 --no-locale \
  --no-sync >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; exit 1; }
"${as_server[@]}" "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 30 \
  -o "-c listen_addresses= -c unix_socket_directories=$tmp -p $port -c fsync=${NRD_PG_FSYNC:-off} -c max_connections=60" \
  start >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
cd - >/dev/null
cat >"$tmp/restart.sh" <<EOS
#!/bin/sh
cd "$tmp" && exec ${as_server[*]} "$bindir/pg_ctl" -D "$tmp/data" -m fast -w -t 30 restart >/dev/null
EOS
chmod 755 "$tmp/restart.sh"
# Stop and start, for a test of the time the server is away.
for verb in stop start; do
  cat >"$tmp/$verb.sh" <<EOS
#!/bin/sh
cd "$tmp" && exec ${as_server[*]} "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -m fast \
  -w -t 30 -o "-c listen_addresses= -c unix_socket_directories=$tmp -p $port -c fsync=${NRD_PG_FSYNC:-off} -c max_connections=60" \
  $verb >/dev/null
EOS
  chmod 755 "$tmp/$verb.sh"
done

export NRD_TEST_PG_HOST=$tmp NRD_TEST_PG_PORT=$port NRD_TEST_PG_USER=nrd \
  NRD_TEST_PG_RESTART=$tmp/restart.sh NRD_TEST_PG_STOP=$tmp/stop.sh NRD_TEST_PG_START=$tmp/start.sh
set +e
"$@"
rc=$?
set -e
[ $rc -eq 0 ] || { echo "pg.sh: server log:" >&2; tail -n 30 "$tmp/server.log" >&2; }
exit $rc
