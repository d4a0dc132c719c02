#!/usr/bin/env bash
# Checks the C sources of src/ include/ tests/ fuzz/ against .clang-format
# (clang-format --dry-run -Werror): exits non-zero and names the files that
# clang-format would change. scripts/test.sh runs it first.
# Usage: scripts/format-check.sh            (CLANG_FORMAT: default clang-format-14)
#        scripts/format-check.sh --fix      (rewrites the files in place)
set -euo pipefail
cd "$(dirname "$0")/.."

cf=${CLANG_FORMAT:-clang-format-14}
command -v "$cf" >/dev/null || cf=clang-format
if ! command -v "$cf" >/dev/null; then
  echo "format-check: clang-format not found (apt-get install clang-format-14)" >&2
  exit 2
fi
echo "format-check: $("$cf" --version)"

mapfile -t files < <(git ls-files -- 'src/*.[ch]' 'include/*.[ch]' 'tests/*.[ch]' 'fuzz/*.[ch]')
if [ ${#files[@]} -eq 0 ]; then
  echo "format-check: no C files listed (is this a git checkout with git installed?)" >&2
  exit 2
fi
if [ "${1:-}" = --fix ]; then
  "$cf" -i --style=file "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$cf" --dry-run -Werror --style=file "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format-check: not formatted: %s\n' "${bad[@]}" >&2
  echo "format-check: ${#bad[@]} of ${#files[@]} files; scripts/format-check.sh --fix rewrites them" >&2
  exit 1
fi
echo "format-check: ${#files[@]} files formatted"
