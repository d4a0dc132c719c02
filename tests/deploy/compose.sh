#!/usr/bin/env bash
# docker/compose.yaml agrees with the image and with nginx.conf: the service
# trusts exactly the proxy network's subnet, keeps /data on a named volume,
# takes secrets from an env_file, and nginx gets docker/nginx.conf, reaches
# the service by the name the upstream line uses and publishes the port nginx
# listens on; the ha profile's PostgreSQL, replicas and nginx-ha agree with
# them too. (No Docker engine here: `docker compose config` cannot run.)
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

command -v node >/dev/null || skip "node is not installed"
[ -d "$NRD_SOURCE_DIR/tools/node_modules/yaml" ] || skip "Node tools missing: run scripts/tools.sh"
node "$NRD_SOURCE_DIR/tests/deploy/check-compose.mjs" "$NRD_SOURCE_DIR/docker"
