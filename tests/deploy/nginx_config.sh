#!/usr/bin/env bash
# nginx -t accepts docker/nginx.conf (and nginx-ha.conf), run without root with its prefix in a
# temporary folder. Only the upstream line is rewritten: its compose host name
# does not resolve outside compose, and nginx resolves it while testing.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

nginx=$(find_nginx)
[ -n "$nginx" ] || skip "nginx is not installed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The listen line stays as shipped: nginx -t does not bind.
listen=$(sed -n 's/^ *listen \(.*\);  # nrd:listen$/\1/p' "$NRD_SOURCE_DIR/docker/nginx.conf")
[ -n "$listen" ] || fail "no nrd:listen line in docker/nginx.conf"
nginx_conf_for 127.0.0.1:3000 "$listen" "$work/nginx.conf"

if ! "$nginx" -t -p "$work/" -c "$work/nginx.conf" -e stderr > "$work/out" 2>&1; then
  cat "$work/out"
  fail "nginx -t refused docker/nginx.conf"
fi
cat "$work/out"
grep -q "test is successful" "$work/out" || fail "nginx -t did not report success"
# Anything nginx warns about (a duplicate directive, an ignored one) is a defect.
if grep -E '\[(warn|emerg|alert|crit)\]' "$work/out"; then
  fail "nginx -t printed warnings"
fi

# An immediate check-failed may take RUN_DEADLINE_SECONDS (600 by default):
# its location must wait longer than that; other locations keep short timeouts.
conf="$NRD_SOURCE_DIR/docker/nginx.conf"
timeout=$(sed -n '/location = \/api\/instances\/migration\/check-failed {/,/}/p' "$conf" |
          sed -n 's/^ *proxy_read_timeout \([0-9]*\)s;/\1/p')
[ -n "$timeout" ] || fail "no proxy_read_timeout in the check-failed location"
[ "$timeout" -gt 600 ] || fail "check-failed proxy_read_timeout ${timeout}s is not above RUN_DEADLINE_SECONDS 600"
default=$(sed -n 's/^ *proxy_read_timeout \([0-9]*\)s;/\1/p' "$conf" | sort -n | head -n 1)
[ "$default" -le 60 ] || fail "the default proxy_read_timeout ${default}s is long"
grep -q '^ *client_max_body_size 64k;' "$conf" || fail "client_max_body_size is not 64k (MAX_BODY_BYTES)"
# The ha profile's docker/nginx-ha.conf too, its replicas (nrd:upstream-ha)
# pointed at two local ports.
ha="$NRD_SOURCE_DIR/docker/nginx-ha.conf"
[ "$(grep -c '# nrd:upstream-ha$' "$ha")" -eq 2 ] || fail "docker/nginx-ha.conf has not two nrd:upstream-ha lines"
awk '/# nrd:upstream-ha$/ { n++; sub(/server [^ ;]+/, "server 127.0.0.1:" 2999 + n) } { print }' \
  "$ha" > "$work/nginx-ha.conf"
if ! "$nginx" -t -p "$work/" -c "$work/nginx-ha.conf" -e stderr > "$work/out-ha" 2>&1 ||
   grep -E '\[(warn|emerg|alert|crit)\]' "$work/out-ha"; then
  cat "$work/out-ha"
  fail "nginx -t refused docker/nginx-ha.conf, or warned"
fi
grep -q "server 127.0.0.1:3001 " "$work/nginx-ha.conf" || fail "the ha upstream was not rewritten"

echo "PASS: nginx -t accepts docker/nginx.conf and docker/nginx-ha.conf; check-failed waits ${timeout}s, others ${default}s"
