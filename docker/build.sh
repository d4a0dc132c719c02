#!/usr/bin/env bash
# Builds, tests and installs novita-recoveryd the way the Docker image does:
# the Dockerfile's build stage runs exactly this script, and CI runs it too
# (tests/deploy), so the image's steps are exercised without a Docker engine.
#
# usage: docker/build.sh [--deps] [--build-dir DIR] [--prefix DIR] [--destdir DIR]
#                        [--no-tests] [--jobs N]
#   --deps         install the Debian build packages first (scripts/deps.sh)
#   --build-dir    CMake build folder (default: build-release); reused when present
#   --prefix       install prefix (default: /usr/local)
#   --destdir      staging root the prefix is installed under (default: none)
#   --no-tests     skip building and running the unit tests
#   --jobs         parallel build jobs (default: nproc)
#
# Steps: configure (Release, warnings as errors, no sanitizers), build, run the
# unit tests (ctest -L unit), install stripped, then check the installed
# binary: it answers --version, and every shared library it needs comes from
# a package listed in docker/runtime-packages.txt (what the runtime stage
# installs) or from libc6.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
deps=0
build_dir=build-release
prefix=/usr/local
destdir=""
tests=1
jobs=$(nproc 2>/dev/null || echo 2)

die() {
  echo "docker/build.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --deps) deps=1 ;;
    --build-dir) build_dir=${2:?--build-dir needs a folder}; shift ;;
    --prefix) prefix=${2:?--prefix needs a folder}; shift ;;
    --destdir) destdir=${2:?--destdir needs a folder}; shift ;;
    --no-tests) tests=0 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
case "$build_dir" in /*) ;; *) build_dir="$src/$build_dir" ;; esac
case "$prefix" in /*) ;; *) die "--prefix must be absolute" ;; esac
if [ -n "$destdir" ]; then
  case "$destdir" in /*) ;; *) destdir="$(pwd)/$destdir" ;; esac
fi

if [ "$deps" -eq 1 ]; then
  echo "== build packages"
  "$src/scripts/deps.sh"
fi

echo "== configure ($build_dir)"
# Debian's hardening flags on top of Release's -O3 -DNDEBUG.
cmake -S "$src" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DNRD_WERROR=ON -DNRD_SANITIZE=OFF \
  -DNRD_TESTS="$([ "$tests" -eq 1 ] && echo ON || echo OFF)" \
  -DCMAKE_C_FLAGS="-D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection" \
  -DCMAKE_EXE_LINKER_FLAGS="-Wl,-z,relro,-z,now" > /dev/null

echo "== build"
cmake --build "$build_dir" -j"$jobs"

if [ "$tests" -eq 1 ]; then
  echo "== unit tests"
  ctest --test-dir "$build_dir" -L unit --output-on-failure -j"$jobs"
fi

echo "== install (${destdir}${prefix})"
DESTDIR="$destdir" cmake --install "$build_dir" --prefix "$prefix" --strip > /dev/null
bin="${destdir}${prefix}/bin/novita-recoveryd"
[ -x "$bin" ] || die "no binary installed at $bin"

echo "== check the installed binary"
version=$("$bin" --version) || die "$bin --version failed"
case "$version" in
  "novita-recoveryd "[0-9]*) echo "$version" ;;
  *) die "unexpected --version output: $version" ;;
esac

# Every library the binary links must come from the runtime stage's packages.
if command -v dpkg-query > /dev/null && command -v readelf > /dev/null; then
  mapfile -t allowed < <(grep -v '^#' "$src/docker/runtime-packages.txt" | tr -s ' \t' '\n' | grep .)
  allowed+=(libc6)
  missing=0
  for soname in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # (awk reads everything: quitting early would SIGPIPE ldconfig under pipefail)
    path=$(ldconfig -p | awk -v s="$soname" '$1 == s && $NF ~ /^\// && !found { print $NF; found = 1 }')
    [ -n "$path" ] || die "$soname (needed by the binary) is not installed"
    real=$(readlink -f "$path")
    pkg=$(dpkg-query -S "$path" 2>/dev/null || dpkg-query -S "$real" 2>/dev/null || true)
    pkg=${pkg%%:*}
    pkg=${pkg%%,*}
    if [ -z "$pkg" ]; then
      echo "  $soname: $real belongs to no package" >&2
      missing=1
    elif [[ " ${allowed[*]} " == *" $pkg "* ]]; then
      echo "  $soname: $pkg"
    else
      echo "  $soname: $pkg, which docker/runtime-packages.txt does not list" >&2
      missing=1
    fi
  done
  [ "$missing" -eq 0 ] || die "the runtime image would lack a library (see above)"
fi
echo "== installed ${destdir}${prefix}/bin/novita-recoveryd"
