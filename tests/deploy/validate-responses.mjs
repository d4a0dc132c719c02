#!/usr/bin/env node
// Validates recorded HTTP responses against openapi.yaml.
//
// usage: node validate-responses.mjs <openapi.yaml> <responses.jsonl> [...more.jsonl]
//
// A line may also be a webhook delivery (see expectedWebhook below).
// Each line of a responses file is one JSON record:
//   {"method": "POST", "path": "/api/instances/migration/runs/{runId}", "status": 200,
//    "body": <the parsed JSON body, or the text for non-JSON responses>,
//    "contentType": "application/json" (optional)}
// `path` is the path template as openapi.yaml spells it (a concrete path that
// equals a template also works). A record whose method/path is not in the
// document must be an error (404/405) and is checked against the Error schema.
// Prints one line per mismatch and exits 1 when there is any, 2 on usage or
// I/O errors, 0 when every record matches.
//
// Needs ajv, ajv-formats and yaml (scripts/tools.sh installs them into
// tools/node_modules; NODE_PATH or a node_modules above this file also work).

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const toolsDir = path.resolve(here, '..', '..', 'tools', 'node_modules');

function load(name) {
  // Prefer the repository's tools/ folder, then the usual resolution.
  for (const base of [path.join(toolsDir, 'x.js'), import.meta.url]) {
    try {
      return createRequire(base)(name);
    } catch {
      // try the next place
    }
  }
  console.error(`validate-responses: cannot load '${name}'; run scripts/tools.sh`);
  process.exit(2);
}

const Ajv2020 = load('ajv/dist/2020').default;
const addFormats = load('ajv-formats').default;
const YAML = load('yaml');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function usage() {
  console.error('usage: validate-responses.mjs <openapi.yaml> <responses.jsonl>...');
  process.exit(2);
}

// The document's components become one schema resource so that every
// '#/components/...' reference resolves against it. Strict mode refuses
// unknown or misspelt schema keywords, so a typo in openapi.yaml fails here.
function buildAjv(doc) {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  ajv.addVocabulary(['components']);
  ajv.addSchema({ $id: 'openapi.json', components: doc.components ?? {} });
  return ajv;
}

// Rewrites local references so they point into the registered resource.
function rebase(schema) {
  if (Array.isArray(schema))
    return schema.map(rebase);
  if (schema && typeof schema === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(schema))
      out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `openapi.json${v}` : rebase(v);
    return out;
  }
  return schema;
}

function deref(doc, obj) {
  let o = obj;
  for (let i = 0; o && o.$ref && i < 10; i++) {
    const parts = o.$ref.replace(/^#\//, '').split('/');
    o = parts.reduce((acc, p) => (acc ? acc[p.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
  }
  return o;
}

// Finds the path item for a template or a concrete path.
function findPathItem(doc, p) {
  const paths = doc.paths ?? {};
  if (paths[p])
    return paths[p];
  for (const [tpl, item] of Object.entries(paths)) {
    const re = new RegExp('^' + tpl.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^/}]+\}/g, '[^/]+') + '$');
    if (re.test(p))
      return item;
  }
  return null;
}

// A delivery the webhook test receiver recorded:
//   {"webhook": true, "headers": {"x-webhook-id": "...", ...}, "body": <the event>}
// The event's `type` picks the document's `webhooks:` entry; the record as a
// whole must match its header parameters and its request body schema.
function expectedWebhook(doc, rec) {
  const type = rec.body?.type;
  const op = doc.webhooks?.[type]?.post;
  if (!op)
    return `no webhook '${type}' in the document's webhooks`;
  const content = op.requestBody?.content ?? {};
  const ctype = String(rec.headers?.['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (!content[ctype])
    return `webhook ${type}: content type '${ctype}' is not documented (documented: ${Object.keys(content).join(', ')})`;
  const headers = { type: 'object', required: [], properties: {} };
  for (const p of (op.parameters ?? []).map((x) => deref(doc, x)).filter((x) => x?.in === 'header')) {
    const name = p.name.toLowerCase();
    headers.properties[name] = p.schema ?? {};
    if (p.required)
      headers.required.push(name);
  }
  return {
    whole: true,
    mediaType: ctype,
    schema: { type: 'object', required: ['headers', 'body'],
              properties: { headers, body: content[ctype].schema ?? {} } },
  };
}

// The schema a record's body must match, or a string saying why there is none.
function expectedSchema(doc, rec) {
  if (rec.webhook)
    return expectedWebhook(doc, rec);
  const item = findPathItem(doc, rec.path);
  const method = String(rec.method ?? '').toLowerCase();
  const status = String(rec.status);
  const errorSchema = { $ref: '#/components/schemas/Error' };

  if (!item || !METHODS.includes(method) || !item[method]) {
    if (!item && status === '404')
      return { schema: errorSchema, mediaType: 'application/json' };
    // With API_TOKEN set, every /api/* path is refused before routing.
    if (status === '401' && String(rec.path).startsWith('/api/'))
      return { schema: errorSchema, mediaType: 'application/json' };
    if (item && status === '405')
      return { schema: errorSchema, mediaType: 'application/json' };
    return `no operation ${rec.method} ${rec.path} in the document (status ${status})`;
  }
  const responses = item[method].responses ?? {};
  const resp = deref(doc, responses[status] ?? responses[`${status[0]}XX`] ?? responses.default);
  if (!resp)
    return `status ${status} is not documented for ${rec.method} ${rec.path}`;
  const content = resp.content ?? {};
  const types = Object.keys(content);
  if (types.length === 0)
    return rec.body === undefined || rec.body === null || rec.body === ''
      ? { schema: null }
      : `${rec.method} ${rec.path} ${status} documents no body but one was sent`;
  let mediaType = types[0];
  if (rec.contentType) {
    const base = String(rec.contentType).split(';')[0].trim().toLowerCase();
    if (!content[base])
      return `content type '${base}' is not documented for ${rec.method} ${rec.path} ${status} (documented: ${types.join(', ')})`;
    mediaType = base;
  }
  return { schema: content[mediaType].schema ?? {}, mediaType };
}

// Compiles every schema the document holds, so a keyword typo anywhere fails
// even when no record reaches it. Returns a list of problems.
function checkDocument(doc, ajv, cache) {
  const problems = [];
  const compile = (where, schema) => {
    try {
      const key = JSON.stringify(schema);
      if (!cache.has(key))
        cache.set(key, ajv.compile(rebase(schema)));
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
  };
  for (const name of Object.keys(doc.components?.schemas ?? {}))
    compile(`components.schemas.${name}`, { $ref: `#/components/schemas/${name}` });
  for (const [p, item] of Object.entries(doc.paths ?? {})) {
    for (const m of METHODS.filter((x) => item[x])) {
      for (const [status, r] of Object.entries(item[m].responses ?? {})) {
        for (const [type, media] of Object.entries(deref(doc, r)?.content ?? {}))
          compile(`${m.toUpperCase()} ${p} ${status} ${type}`, media.schema ?? {});
      }
    }
  }
  for (const [name, item] of Object.entries(doc.webhooks ?? {})) {
    const op = item.post ?? {};
    for (const [type, media] of Object.entries(op.requestBody?.content ?? {}))
      compile(`webhook ${name} ${type}`, media.schema ?? {});
    for (const p of (op.parameters ?? []).map((x) => deref(doc, x)))
      compile(`webhook ${name} header ${p?.name}`, p?.schema ?? {});
  }
  return problems;
}

function main() {
  const [specPath, ...logs] = process.argv.slice(2);
  if (!specPath || logs.length === 0)
    usage();

  let doc;
  try {
    doc = YAML.parse(readFileSync(specPath, 'utf8'));
  } catch (e) {
    console.error(`validate-responses: ${specPath}: ${e.message}`);
    process.exit(2);
  }
  const ajv = buildAjv(doc);
  const cache = new Map();
  const problems = checkDocument(doc, ajv, cache);
  if (problems.length > 0) {
    for (const p of problems)
      console.error(`validate-responses: ${specPath}: ${p}`);
    process.exit(2);
  }
  let checked = 0;
  let bad = 0;

  for (const file of logs) {
    let text;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      console.error(`validate-responses: ${file}: ${e.message}`);
      process.exit(2);
    }
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '')
        return;
      const where = `${file}:${i + 1}`;
      checked++;
      let rec;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        console.log(`${where}: not a JSON record: ${e.message}`);
        bad++;
        return;
      }
      const exp = expectedSchema(doc, rec);
      if (typeof exp === 'string') {
        console.log(`${where}: ${exp}`);
        bad++;
        return;
      }
      if (exp.schema === null)
        return;
      if (exp.mediaType === 'application/json' && typeof rec.body === 'string') {
        console.log(`${where}: ${rec.method} ${rec.path} ${rec.status}: body is not JSON: ${rec.body.slice(0, 120)}`);
        bad++;
        return;
      }
      const key = JSON.stringify(exp.schema);
      let validate = cache.get(key);
      if (!validate) {
        validate = ajv.compile(rebase(exp.schema));
        cache.set(key, validate);
      }
      if (!validate(exp.whole ? rec : rec.body)) {
        const errs = validate.errors
          .map((e) => `${e.instancePath || '/'} ${e.message}${e.params && e.params.additionalProperty ? ` '${e.params.additionalProperty}'` : ''}${e.params && e.params.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : ''}${e.params && 'allowedValue' in e.params ? ` ${JSON.stringify(e.params.allowedValue)}` : ''}`)
          .join('; ');
        console.log(`${where}: ${rec.method} ${rec.path} ${rec.status}: ${errs}`);
        bad++;
      }
    });
  }
  if (bad > 0) {
    console.log(`validate-responses: ${bad} of ${checked} record(s) do not match ${specPath}`);
    process.exit(1);
  }
  console.log(`validate-responses: all ${checked} record(s) match ${specPath}`);
}

main();
