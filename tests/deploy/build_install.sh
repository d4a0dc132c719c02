#!/usr/bin/env bash
# Runs docker/build.sh (the Docker image's build stage: Release build, unit
# tests, stripped install, runtime-library check) into a temporary staging
# root, then uses the installed binary as the image would: --version,
# migrate-db, and `healthcheck` (the image's HEALTHCHECK) against a running
# demo and against a port nobody listens on. The Release build folder is kept
# in the CTest build folder so later runs are incremental.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

command -v cmake >/dev/null || skip "cmake is not installed"
work=$(mktemp -d)
demo_pid=""
cleanup() {
  local rc=$?
  if [ -n "$demo_pid" ]; then
    kill "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

build_dir=${NRD_BUILD_DIR:+$NRD_BUILD_DIR/deploy-release}
build_dir=${build_dir:-$work/build}
"$NRD_SOURCE_DIR/docker/build.sh" --build-dir "$build_dir" --prefix /usr/local \
  --destdir "$work/stage" --jobs 2 > "$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log"
  fail "docker/build.sh failed"
}
tail -n 12 "$work/build.log"

bin="$work/stage/usr/local/bin/novita-recoveryd"
[ -x "$bin" ] || fail "nothing installed at usr/local/bin/novita-recoveryd"
# cmake --install (GNUInstallDirs): the binary, the systemd unit naming it by
# its installed path, the example env file, the licence, the man page; no more.
(cd "$work/stage" && find . -type f | sort) > "$work/files"
want="./usr/local/bin/novita-recoveryd
./usr/local/lib/systemd/system/novita-recoveryd.service
./usr/local/share/doc/novita-recoveryd/copyright
./usr/local/share/doc/novita-recoveryd/env.example"
if command -v help2man >/dev/null; then
  want="$want
./usr/local/share/man/man8/novita-recoveryd.8"
fi
[ "$(cat "$work/files")" = "$(sort <<<"$want")" ] || {
  diff <(sort <<<"$want") "$work/files" || true
  fail "the install does not hold exactly the expected files"
}
grep -q '^ExecStart=/usr/local/bin/novita-recoveryd serve$' \
  "$work/stage/usr/local/lib/systemd/system/novita-recoveryd.service" ||
  fail "the installed unit does not start the binary at its installed path"
"$bin" --version | grep -Eq '^novita-recoveryd [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
if command -v readelf >/dev/null; then
  readelf -S "$bin" | grep -q '\.debug_info' && fail "the installed binary is not stripped"
fi

# The embedded migrations apply in the Release build.
"$bin" migrate-db --database-path "$work/db/recovery.db" > "$work/migrate.out" ||
  fail "migrate-db failed: $(cat "$work/migrate.out")"
grep -q "migration(s) applied" "$work/migrate.out" || fail "migrate-db said: $(cat "$work/migrate.out")"
[ "$(stat -c %a "$work/db/recovery.db")" = 600 ] || fail "the database file is not mode 0600"

# The image's HEALTHCHECK: 0 while the service answers, non-zero otherwise.
"$bin" demo --port 0 --database-path "$work/db/demo.db" --migration-interval-minutes 0 \
  > "$work/demo.log" 2>&1 &
demo_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(grep '"msg":"listening"' "$work/demo.log" 2>/dev/null |
         sed -n 's/.*"port":\([0-9]*\).*/\1/p' | head -n 1 || true)
  [ -n "$port" ] && break
  kill -0 "$demo_pid" 2>/dev/null || fail "demo exited: $(tail -n 5 "$work/demo.log")"
  sleep 0.1
done
[ -n "$port" ] || fail "demo did not log its port"
HOST=0.0.0.0 PORT=$port timeout 10 "$bin" healthcheck ||
  fail "healthcheck failed against a running service"
kill "$demo_pid"
wait "$demo_pid" || fail "demo did not exit 0 on SIGTERM"
demo_pid=""
if HOST=127.0.0.1 PORT=$port timeout 10 "$bin" healthcheck 2>/dev/null; then
  fail "healthcheck passed with nothing listening"
fi
echo "PASS: docker/build.sh installs a working binary"
