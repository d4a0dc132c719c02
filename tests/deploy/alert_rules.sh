#!/usr/bin/env bash
# deploy/prometheus/alerts.yml: promtool checks the rules and runs their unit
# tests (alerts.test.yml), and every alert has a test that fires it and one
# that keeps it quiet. prometheus.yml (docker/compose.yaml's monitoring
# profile) passes promtool check config.
set -euo pipefail
: "${NRD_SOURCE_DIR:?set by CTest}"
. "$NRD_SOURCE_DIR/tests/deploy/lib.sh"

promtool=$(find_promtool)
[ -n "$promtool" ] || skip "promtool is not installed (scripts/deps.sh --full extracts it)"
command -v node >/dev/null || skip "node is not installed"
[ -d "$NRD_SOURCE_DIR/tools/node_modules/yaml" ] || skip "run scripts/tools.sh first"
dir=$NRD_SOURCE_DIR/deploy/prometheus

"$promtool" check rules "$dir/alerts.yml"
"$promtool" check config "$dir/prometheus.yml"   # the compose profile's, loading alerts.yml
(cd "$dir" && "$promtool" test rules alerts.test.yml)

# Each alert: at least one test expecting it, and one expecting silence.
node --input-type=module - "$dir/alerts.yml" "$dir/alerts.test.yml" <<'JS'
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const YAML = createRequire(process.env.NRD_SOURCE_DIR + '/tools/node_modules/x.js')('yaml');
const [rulesFile, testsFile] = process.argv.slice(2);
const alerts = YAML.parse(readFileSync(rulesFile, 'utf8')).groups.flatMap((g) => g.rules)
  .map((r) => r.alert).filter(Boolean);
const cases = YAML.parse(readFileSync(testsFile, 'utf8')).tests
  .flatMap((t) => t.alert_rule_test ?? []);
const problems = [];
if (alerts.length < 6)
  problems.push(`${rulesFile}: ${alerts.length} alerts, expected 6`);
for (const a of alerts) {
  const mine = cases.filter((c) => c.alertname === a);
  if (!mine.some((c) => (c.exp_alerts ?? []).length > 0))
    problems.push(`alert ${a} has no test that fires it`);
  if (!mine.some((c) => (c.exp_alerts ?? []).length === 0))
    problems.push(`alert ${a} has no test that keeps it quiet`);
}
for (const p of problems)
  console.log(p);
if (problems.length)
  process.exit(1);
console.log(`${alerts.length} alerts, each with a firing and a quiet test`);
JS
