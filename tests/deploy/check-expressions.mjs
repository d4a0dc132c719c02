#!/usr/bin/env node
// Every PromQL expression of the alert rules and of the Grafana dashboard
// names only metrics, labels and label values that a live /metrics exposes.
// A renamed metric or label, or a typo in a label value, fails here instead
// of giving an alert that can never fire or an empty panel.
//
// usage: node check-expressions.mjs <metrics.txt> <alerts.yml> <dashboard.json>
// metrics.txt is a scrape of the running service. Prometheus adds `job` and
// `instance` to every series it scrapes and makes `up`; those are allowed too.
// Prints one line per problem; exits 1 when there is any, 2 on usage errors.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const YAML = createRequire(path.resolve(here, '..', '..', 'tools', 'node_modules', 'x.js'))('yaml');
const [metricsFile, rulesFile, dashboardFile] = process.argv.slice(2);
if (!dashboardFile) {
  console.error('usage: check-expressions.mjs <metrics.txt> <alerts.yml> <dashboard.json>');
  process.exit(2);
}

// ---- what the scrape exposes: series name -> label name -> set of values ----
const exposed = new Map();
const TARGET_LABELS = ['job', 'instance'];
function note(name, labels) {
  if (!exposed.has(name))
    exposed.set(name, new Map(TARGET_LABELS.map((l) => [l, null])));  // null: any value
  const m = exposed.get(name);
  for (const [k, v] of Object.entries(labels)) {
    if (!m.has(k))
      m.set(k, new Set());
    m.get(k)?.add(v);
  }
}
for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
  if (!line || line.startsWith('#'))
    continue;
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s/.exec(line);
  if (!m)
    continue;
  const labels = {};
  for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
    labels[l[1]] = l[2];
  note(m[1], labels);
}
note('up', {});
if (exposed.size < 10) {
  console.error(`check-expressions: only ${exposed.size} series names in ${metricsFile}; not a scrape?`);
  process.exit(1);
}

// ---- the expressions ----
const exprs = [];
const rules = YAML.parse(readFileSync(rulesFile, 'utf8'));
for (const g of rules?.groups ?? [])
  for (const r of g.rules ?? [])
    exprs.push({ where: `${rulesFile}: ${r.alert ?? r.record}`, expr: String(r.expr ?? '') });
const dash = JSON.parse(readFileSync(dashboardFile, 'utf8'));
const panels = (dash.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
for (const p of panels)
  for (const t of p.targets ?? [])
    exprs.push({ where: `${dashboardFile}: panel "${p.title}" ${t.refId}`, expr: String(t.expr ?? '') });
for (const v of dash.templating?.list ?? []) {
  const q = typeof v.query === 'object' ? v.query?.query : v.query;
  const lv = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(String(q ?? ''));
  if (lv)
    exprs.push({ where: `${dashboardFile}: variable ${v.name}`, expr: `sum by (${lv[2]}) (${lv[1]})` });
}
const problems = [];
if (exprs.filter((e) => e.where.startsWith(rulesFile)).length === 0)
  problems.push(`${rulesFile}: no rule expressions found`);
if (exprs.filter((e) => e.where.startsWith(dashboardFile)).length === 0)
  problems.push(`${dashboardFile}: no panel expressions found`);

// ---- a small PromQL reader: enough to find names, labels and values ----
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring',
  'group_left', 'group_right', 'inf', 'nan',
  // aggregations may put their grouping before the parenthesis: sum by (x) (...)
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk',
  'topk', 'quantile']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const TOKEN = /\s+|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\d+(?:\.\d+)?(?:ms|[smhdwy])?|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|==|>=|<=|[-+*/%^(){}\[\],=<>@]/y;

function tokens(expr) {
  const out = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(expr);
    if (!m)
      throw new Error(`cannot read at "${expr.slice(at, at + 20)}"`);
    if (!/^\s+$/.test(m[0]))
      out.push(m[0]);
  }
  return out;
}

const allLabels = new Set([...exposed.values()].flatMap((m) => [...m.keys()]));
function labelKnown(metric, label) {
  return metric ? exposed.get(metric)?.has(label) : allLabels.has(label);
}

function check({ where, expr }) {
  let t;
  try {
    t = tokens(expr.replace(/\$__(rate_interval|interval|range)/g, '5m'));
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
    return;
  }
  const metrics = [];
  for (let i = 0; i < t.length; i++) {
    const tok = t[i];
    if (tok === '[') {  // a range or subquery: durations only
      while (i < t.length && t[i] !== ']')
        i++;
      continue;
    }
    if (GROUPING.has(tok) && t[i + 1] === '(') {
      for (i += 2; i < t.length && t[i] !== ')'; i++) {
        if (t[i] !== ',' && !allLabels.has(t[i]))
          problems.push(`${where}: label "${t[i]}" (in ${tok}) is not exposed by any series`);
      }
      continue;
    }
    const isName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(tok);
    let metric = null;  // null: a bare {...} selector; undefined: an unknown metric
    if (isName && t[i + 1] !== '(' && !KEYWORDS.has(tok.toLowerCase())) {
      metric = tok;
      metrics.push(tok);
      if (!exposed.has(tok)) {
        problems.push(`${where}: metric "${tok}" is not exposed`);
        metric = undefined;
      }
      if (t[i + 1] !== '{')
        continue;
      i++;
    } else if (tok !== '{') {
      continue;
    }
    // {label op "value", ...}
    for (i++; i < t.length && t[i] !== '}'; i++) {
      if (t[i] === ',')
        continue;
      const [label, op, raw] = [t[i], t[i + 1], t[i + 2] ?? ''];
      i += 2;
      const value = raw.slice(1, -1);
      if (label === '__name__')
        continue;
      if (metric !== undefined && !labelKnown(metric, label)) {
        problems.push(`${where}: label "${label}" is not exposed${metric ? ` on ${metric}` : ''}`);
        continue;
      }
      const values = metric ? exposed.get(metric).get(label) : null;
      if (!values || value.includes('$'))
        continue;
      const ok = op === '=' ? values.has(value)
        : op === '=~' ? [...values].some((v) => new RegExp(`^(?:${value})$`).test(v))
        : true;
      if (!ok)
        problems.push(`${where}: ${metric}{${label}${op}"${value}"} matches no exposed value ` +
                      `(exposed: ${[...values].join(', ')})`);
    }
  }
  if (metrics.length === 0)
    problems.push(`${where}: names no metric`);
}

exprs.forEach(check);
for (const p of problems)
  console.log(p);
if (problems.length) {
  console.log(`check-expressions: ${problems.length} problem(s) in ${exprs.length} expressions`);
  process.exit(1);
}
console.log(`check-expressions: ${exprs.length} expressions name only exposed metrics and labels`);
