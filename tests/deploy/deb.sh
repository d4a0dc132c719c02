#!/usr/bin/env bash
# The Debian package: a Release build with the /usr prefix, `cpack -G DEB`,
# its Depends (docker/runtime-packages.txt) and contents checked, installed
# with `dpkg -i` on this machine, then the installed binary used: --version,
# `demo` on a free port answering /health, the installed unit verified by
# systemd-analyze, the man page present; then `dpkg -r` and nothing left.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

for t in cmake cpack dpkg dpkg-deb curl flock; do
  command -v "$t" >/dev/null || skip "$t is not installed"
done
[ "$(id -u)" -eq 0 ] || skip "dpkg -i needs root"
work=$(mktemp -d)
chmod 755 "$work"
installed=0
svc_pid=""
cleanup() {
  local rc=$?
  if [ -n "$svc_pid" ]; then
    kill "$svc_pid" 2>/dev/null || true
    wait "$svc_pid" 2>/dev/null || true
  fi
  if [ "$installed" -eq 1 ]; then
    dpkg -r novita-recoveryd > /dev/null 2>&1 || true
  fi
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    tail -n 40 "$work/build.log" 2>/dev/null || true
    tail -n 20 "$work/service.err" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

build=${NRD_BUILD_DIR:+$NRD_BUILD_DIR/deb-release}
build=${build:-$work/build}
{
  cmake -S "$NRD_SOURCE_DIR" -B "$build" -DCMAKE_BUILD_TYPE=Release -DNRD_TESTS=OFF \
    -DNRD_WERROR=ON -DNRD_SANITIZE=OFF -DCMAKE_INSTALL_PREFIX=/usr
  cmake --build "$build" -j2
  (cd "$build" && cpack -G DEB -B "$work/pkg")
} > "$work/build.log" 2>&1 || fail "the package did not build"
deb=$(ls "$work"/pkg/novita-recoveryd_*.deb)
[ -f "$deb" ] || fail "no .deb produced"

depends=$(dpkg-deb -f "$deb" Depends)
read -r -a runtime <<<"$(grep -v '^#' "$NRD_SOURCE_DIR/docker/runtime-packages.txt" | tr '\n' ' ')"
[ ${#runtime[@]} -gt 0 ] || fail "docker/runtime-packages.txt names no package"
for p in "${runtime[@]}"; do
  grep -qw -- "$p" <<<"$depends" || fail "Depends '$depends' lacks $p"
done
dpkg-deb -c "$deb" > "$work/contents"
for f in ./usr/bin/novita-recoveryd ./usr/lib/systemd/system/novita-recoveryd.service \
         ./usr/share/man/man8/novita-recoveryd.8 ./usr/share/doc/novita-recoveryd/env.example \
         ./usr/share/doc/novita-recoveryd/copyright; do
  grep -q " $f\$" "$work/contents" || fail "the package lacks $f"
done
echo "package $(basename "$deb"): Depends $depends"

# One dpkg at a time on this machine; the package must not be there already.
exec 9> "${TMPDIR:-/tmp}/novita-recoveryd-deb-test.lock"
flock -w 300 9 || fail "another package test holds the lock"
if dpkg-query -W -f='${Status}' novita-recoveryd 2>/dev/null | grep -q "install ok installed"; then
  fail "novita-recoveryd is already installed here; this test would replace it"
fi
dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i failed"; }
installed=1

bin=/usr/bin/novita-recoveryd
version=$("$bin" --version) || fail "$bin --version failed"
want=$(dpkg-deb -f "$deb" Version)
[ "$version" = "novita-recoveryd $want" ] || fail "--version says '$version', the package $want"

start_demo "$bin" "$work" --migration-interval-minutes 0
code=$(curl -sS -o "$work/health" -w '%{http_code}' "http://127.0.0.1:$svc_port/health")
[ "$code" = 200 ] || fail "/health of the installed demo answered $code"
grep -q '"status":"ok"' "$work/health" || fail "/health body: $(cat "$work/health")"
kill "$svc_pid"
wait "$svc_pid" || fail "the installed demo did not stop cleanly on SIGTERM"
svc_pid=""

unit=/usr/lib/systemd/system/novita-recoveryd.service
grep -q "^ExecStart=$bin serve\$" "$unit" || fail "the installed unit does not start $bin"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no "$unit" > "$work/verify" 2>&1 || { cat "$work/verify"; fail "verify"; }
  [ ! -s "$work/verify" ] || { cat "$work/verify"; fail "systemd-analyze verify has remarks"; }
fi
grep -q '^\.TH NOVITA-RECOVERYD "8"' /usr/share/man/man8/novita-recoveryd.8 ||
  fail "the man page is not a section 8 page"
grep -q 'EX_TEMPFAIL\|75' /usr/share/man/man8/novita-recoveryd.8 || fail "the man page lacks the exit codes"

dpkg -r novita-recoveryd > /dev/null
installed=0
[ ! -e "$bin" ] || fail "dpkg -r left $bin"
[ ! -e "$unit" ] || fail "dpkg -r left the unit"
echo "installed, ran (--version, demo /health), verified and removed $(basename "$deb")"
