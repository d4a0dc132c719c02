# shellcheck shell=bash
# Shared by the deploy tests (sourced, not run).

# Exits 77 (skip) with a reason.
skip() {
  echo "SKIP: $*"
  exit 77
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Prints the path of nginx (Debian installs it in /usr/sbin, often not on a
# user's PATH), or nothing.
find_nginx() {
  local p
  p=$(command -v nginx 2>/dev/null || true)
  if [ -z "$p" ] && [ -x /usr/sbin/nginx ]; then
    p=/usr/sbin/nginx
  fi
  printf '%s' "$p"
}

# Writes docker/nginx.conf to $3 with the upstream and listen lines (marked
# "nrd:upstream" and "nrd:listen") pointing at $1 and $2 (host:port each).
nginx_conf_for() {
  local upstream=$1 listen=$2 out=$3
  sed -e "s|^\\( *server \\).*\\(# nrd:upstream\\)\$|\\1${upstream};  \\2|" \
      -e "s|^\\( *listen \\).*\\(# nrd:listen\\)\$|\\1${listen};  \\2|" \
      "$NRD_SOURCE_DIR/docker/nginx.conf" > "$out"
  grep -q "server ${upstream};  # nrd:upstream" "$out" || fail "no nrd:upstream line in docker/nginx.conf"
  grep -q "listen ${listen};  # nrd:listen" "$out" || fail "no nrd:listen line in docker/nginx.conf"
}

# Prints the path of promtool: on PATH, or where scripts/deps.sh extracts it
# (tools/bin/promtool, from Debian's prometheus package), or nothing.
find_promtool() {
  local p
  p=$(command -v promtool 2>/dev/null || true)
  if [ -z "$p" ] && [ -x "$NRD_SOURCE_DIR/tools/bin/promtool" ]; then
    p=$NRD_SOURCE_DIR/tools/bin/promtool
  fi
  printf '%s' "$p"
}

# Starts `$1 demo` on a port the kernel picks, with its database under $2;
# further arguments go to the service. Sets svc_pid and svc_port; logs go to
# $2/service.log and $2/service.err.
start_demo() {
  local bin=$1 dir=$2
  shift 2
  mkdir -p "$dir/db"
  "$bin" demo --port 0 --database-path "$dir/db/demo.db" "$@" \
    > "$dir/service.log" 2> "$dir/service.err" &
  svc_pid=$!
  svc_port=""
  for _ in $(seq 1 200); do
    svc_port=$(grep '"msg":"listening"' "$dir/service.log" 2>/dev/null |
               sed -n 's/.*"port":\([0-9]*\).*/\1/p' | head -n 1 || true)
    [ -n "$svc_port" ] && return 0
    kill -0 "$svc_pid" 2>/dev/null || fail "the service exited before listening"
    sleep 0.1
  done
  fail "the service did not log its port within 20 s"
}
