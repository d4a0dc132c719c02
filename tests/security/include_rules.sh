#!/usr/bin/env bash
# The include rule: each third-party library is used by one layer only.
#   microhttpd.h  src/http/ and src/sim/ (the simulator, the documented exception)
#   curl/curl.h   src/outbound/ (the request both senders share), its two users
#                 src/novita/ and src/webhook/, and src/main.c (healthcheck)
#   outbound.h    src/novita/ and src/webhook/ only
#   sqlite3.h     src/store/ (and tests/store/, which plants a future schema)
#   libpq-fe.h    src/store/pg/ (and the tests that set up its server's databases)
# And between our layers: src/http/ does not include nrd/store.h (nor
# store_pg.h); it sees the store's data through nrd/domain.h and core's
# queries (nrd/run.h).
#   nrd/service.h src/service/, src/main.c and tests/ (the service is the top
#                 layer: no other layer may wire the parts or reach up to it)
# Public headers (include/) include none of them. Tests may use libcurl and
# libmicrohttpd as clients and fake servers.
# Usage: include_rules.sh ROOT     check the tree at ROOT
#        include_rules.sh --self-test   prove a planted violation is caught
set -euo pipefail

# check ROOT HEADER ALLOWED-REGEX DIR...: every file under DIR... that includes
# HEADER must have a path (relative to ROOT) matching ALLOWED-REGEX.
check() {
  local root=$1 header=$2 allowed=$3 bad=0 f rel
  shift 3
  local dirs=()
  for d in "$@"; do
    [ -d "$root/$d" ] && dirs+=("$root/$d")
  done
  [ ${#dirs[@]} -eq 0 ] && return 0
  while IFS= read -r f; do
    rel=${f#"$root"/}
    if ! [[ $rel =~ $allowed ]]; then
      echo "include rule: $rel includes <$header>" >&2
      bad=1
    fi
  done < <(grep -rlE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]${header}[>\"]" \
             --include='*.c' --include='*.h' "${dirs[@]}" || true)
  return $bad
}

check_tree() {
  local root=$1 rc=0
  check "$root" 'microhttpd\.h' '^src/(http|sim)/' src include || rc=1
  check "$root" 'curl/curl\.h' '^src/(outbound/|novita/|webhook/|main\.c$)' src include || rc=1
  check "$root" 'outbound\.h' '^src/(outbound|novita|webhook)/' src include || rc=1
  check "$root" 'sqlite3\.h' '^(src|tests)/store/' src include tests || rc=1
  check "$root" 'libpq-fe\.h' '^(src/store/pg/|tests/(store|support)/)' src include tests || rc=1
  check "$root" 'nrd/store(_pg)?\.h' '^$' src/http || rc=1
  check "$root" 'nrd/service\.h' '^(src/(service/|main\.c$)|tests/)' src include tests || rc=1
  return $rc
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/src/http" "$tmp/src/core" "$tmp/src/store" "$tmp/tests/store" "$tmp/tests/http"
  printf '#include <microhttpd.h>\n' >"$tmp/src/http/ok.c"
  printf '#include <sqlite3.h>\n' >"$tmp/src/store/ok.c"
  printf '#include <sqlite3.h>\n' >"$tmp/tests/store/ok.c"
  check_tree "$tmp" || { echo "self-test: a clean tree was refused" >&2; exit 1; }
  for planted in 'src/core/x.c:#include <microhttpd.h>' 'src/core/y.h:  #  include "curl/curl.h"' \
                 'src/http/z.c:#include <sqlite3.h>' 'tests/http/t.c:#include <sqlite3.h>' \
                 'src/http/s.c:#include "nrd/store.h"' \
                 'src/http/w.c:#include "nrd/service.h"' 'src/core/v.c:#include "outbound.h"'; do
    file=${planted%%:*}
    printf '%s\n' "${planted#*:}" >"$tmp/$file"
    if check_tree "$tmp" 2>/dev/null; then
      echo "self-test: $file was not caught" >&2
      exit 1
    fi
    rm "$tmp/$file"
  done
  echo "include rule self-test: every planted violation caught"
  exit 0
fi

root=${1:?usage: include_rules.sh ROOT | --self-test}
check_tree "$root"
echo "include rule: ok"
