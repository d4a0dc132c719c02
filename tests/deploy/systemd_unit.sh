#!/usr/bin/env bash
# deploy/systemd/novita-recoveryd.service passes `systemd-analyze verify`
# without a single remark (verify exits 0 on some unknown keys, so its output
# must be empty too), and carries the settings the service relies on.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}" "${NRD_BINARY:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed (Debian package systemd)"
unit=$NRD_SOURCE_DIR/deploy/systemd/novita-recoveryd.service
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for want in '^Type=exec$' '^DynamicUser=yes$' '^StateDirectory=novita-recoveryd$' \
            '^EnvironmentFile=-/etc/novita-recoveryd/env$' '^LoadCredential=NOVITA_API_KEY:' \
            '^Restart=on-failure$' '^TimeoutStopSec=15$' '^ProtectSystem=strict$' \
            '^PrivateTmp=yes$' '^NoNewPrivileges=yes$' '^RestrictAddressFamilies=' \
            '^SystemCallFilter=@system-service$' '^ExecStart=/usr/bin/novita-recoveryd serve$' \
            '^RestartPreventExitStatus=64 78$'; do
  grep -q -- "$want" "$unit" || fail "the unit has no line matching $want"
done

# verify checks that ExecStart's binary exists: point it at the one just built.
sed "s|^ExecStart=/usr/bin/novita-recoveryd|ExecStart=$NRD_BINARY|" "$unit" \
  > "$work/novita-recoveryd.service"
rc=0
systemd-analyze verify --man=no "$work/novita-recoveryd.service" > "$work/out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || [ -s "$work/out" ]; then
  cat "$work/out"
  fail "systemd-analyze verify: exit $rc, or remarks above"
fi
echo "systemd-analyze verify: no remarks"
