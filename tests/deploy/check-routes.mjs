#!/usr/bin/env node
// openapi.yaml and the service agree on what exists: every route in the
// route table (src/http/router.c) is an operation in the document and the
// other way round, and the error codes of the catalogue (src/http/errors.c)
// are those the document lists (plus the ones nginx answers with).
// usage: node check-routes.mjs <source folder>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const YAML = createRequire(path.resolve(here, '..', '..', 'tools', 'node_modules', 'x.js'))('yaml');
const src = process.argv[2];
if (!src) {
  console.error('usage: check-routes.mjs <source folder>');
  process.exit(2);
}
const doc = YAML.parse(readFileSync(path.join(src, 'openapi.yaml'), 'utf8'));
const router = readFileSync(path.join(src, 'src', 'http', 'router.c'), 'utf8');
const errors = readFileSync(path.join(src, 'src', 'http', 'errors.c'), 'utf8');
const problems = [];

const api = (/#define API "([^"]+)"/.exec(router) ?? [])[1] ?? '';
const routes = new Set();
for (const m of router.matchAll(/\{\s*"([A-Z]+)",\s*(API\s*)?"([^"]+)"/g))
  routes.add(`${m[1]} ${m[2] ? api : ''}${m[3]}`);
if (routes.size === 0)
  problems.push('found no routes in src/http/router.c');

const operations = new Set();
for (const [p, item] of Object.entries(doc.paths ?? {})) {
  for (const m of ['get', 'put', 'post', 'delete', 'patch'].filter((x) => item[x]))
    operations.add(`${m.toUpperCase()} ${p}`);
}
for (const r of routes) {
  if (!operations.has(r))
    problems.push(`route ${r} is not in openapi.yaml`);
}
for (const o of operations) {
  if (!routes.has(o))
    problems.push(`openapi.yaml has ${o}, which the route table lacks`);
}

const codes = new Set([...errors.matchAll(/=\s*\{\s*"([A-Z_]+)",\s*\d{3}/g)].map((m) => m[1]));
if (codes.size === 0)
  problems.push('found no error codes in src/http/errors.c');
const documented = new Set(doc.components?.schemas?.ErrorDetail?.properties?.code?.enum ?? []);
const fromNginx = new Set(['RATE_LIMITED', 'UPSTREAM_UNAVAILABLE']);
for (const c of codes) {
  if (!documented.has(c))
    problems.push(`error code ${c} is not in openapi.yaml`);
}
for (const c of documented) {
  if (!codes.has(c) && !fromNginx.has(c))
    problems.push(`openapi.yaml lists error code ${c}, which the catalogue lacks`);
}

if (problems.length > 0) {
  for (const p of problems)
    console.log(`check-routes: ${p}`);
  process.exit(1);
}
console.log(`check-routes: ${routes.size} routes and ${codes.size} error codes agree with openapi.yaml`);
