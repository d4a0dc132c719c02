#!/usr/bin/env bash
# No function longer than 80 lines (STYLE: keep functions short).
# Usage: function_length.sh ROOT [dir...]   check ROOT's dirs (default: src,
#          all of it, main.c included)
#        function_length.sh --self-test      prove a long function is caught
# A function is counted from the line after its opening brace (a "{" alone
# at the start of a line) to the line before its closing brace (a "}" at the
# start of a line): the body, blank lines and comments included.
set -euo pipefail
max=80

# check ROOT DIR...: prints each function over max lines; 1 when any.
check() {
  local root=$1 bad
  shift
  bad=$(cd "$root" && find "$@" -name '*.c' -print0 | sort -z | xargs -0 -r awk -v max="$max" '
    FNR == 1 { start = 0 }
    /^\{/ { start = FNR; name = prev; next }
    /^\}/ && start {
      len = FNR - start - 1
      if (len > max) printf "%s:%d: %s is %d lines (max %d)\n", FILENAME, start, name, len, max
      start = 0
    }
    /^[A-Za-z_]/ { prev = $0 }
  ')
  [ -z "$bad" ] && return 0
  echo "$bad" >&2
  return 1
}

if [ "${1:-}" = "--self-test" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/src/core"
  body() { printf 'int f(void)\n{\n'; for _ in $(seq "$1"); do printf '  x();\n'; done; printf '}\n'; }
  body 80 >"$tmp/src/core/ok.c"
  check "$tmp" src/core || { echo "self-test: an 80-line function was refused" >&2; exit 1; }
  body 81 >"$tmp/src/core/long.c"
  if check "$tmp" src/core 2>/dev/null; then
    echo "self-test: an 81-line function was not caught" >&2
    exit 1
  fi
  echo "function length self-test: an 81-line function caught"
  exit 0
fi

root=${1:?usage: function_length.sh ROOT [dir...] | --self-test}
shift
dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(src)
check "$root" "${dirs[@]}"
echo "function length: every function in ${dirs[*]} is at most $max lines"
