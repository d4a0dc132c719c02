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
