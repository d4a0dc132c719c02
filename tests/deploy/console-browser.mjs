#!/usr/bin/env node
// The operator console driven in headless Chromium (puppeteer-core), against
// two running demos (console_browser.sh starts them):
//   NRD_OPEN_URL   a demo without API_TOKEN
//   NRD_TOKEN_URL  a demo with API_TOKEN=NRD_TOKEN
// Checks: the page loads with no console error and no CSP violation; its
// counts match the API; Run now completes a run that then appears in the
// list; a run opens to its outcomes and the hostile instance name is text;
// Dry run now shows the ticker's work; Retry and Abandon send their calls
// (checked in the ledger afterwards); Pause makes scheduler/status say
// paused; with a token, a wrong one gets a clear message and the right one
// is asked once and kept in sessionStorage. Every API answer the page got is
// written to NRD_RESPONSES (JSON lines) for the openapi.yaml check.
import { writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '..', '..', 'tools', 'node_modules', 'x.js'));
const puppeteer = require('puppeteer-core');

const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
const OPEN = env('NRD_OPEN_URL');
const TOKEN_URL = env('NRD_TOKEN_URL');
const TOKEN = env('NRD_TOKEN');
const RESPONSES = env('NRD_RESPONSES');
const API = '/api/instances/migration';
const HOSTILE = '<img src=x onerror=alert(1)>';
const NO_IMAGE_JOB = 'job-legacy-7';
const WAIT = { timeout: 15000 };

function fail(msg) {
  throw new Error(msg);
}

const t0 = Date.now();
function ok(msg) {
  console.log(`ok: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
}

async function apiGet(base, p, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const res = await fetch(base + p, { headers });
  if (res.status !== 200) fail(`GET ${p}: ${res.status} ${await res.text()}`);
  return res.json();
}

// The path as openapi.yaml spells it.
function template(p) {
  return p.replace(/^(\/api\/instances\/migration\/runs\/)[^/]+$/, '$1{runId}')
    .replace(/^(\/api\/instances\/migration\/recoveries\/)[^/]+(\/(retry|abandon))$/, '$1{jobId}$2');
}

// Watches a page: console errors, uncaught errors, CSP violations, dialogs
// (an alert would be the hostile name run as code), and every API answer.
function watch(page, name, record) {
  const seen = { errors: [], csp: [], dialogs: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') seen.errors.push(`${name}: console: ${m.text()}`);
  });
  page.on('pageerror', (e) => seen.errors.push(`${name}: uncaught: ${e.message}`));
  page.on('dialog', async (d) => {
    seen.dialogs.push(d.message());
    await d.dismiss();
  });
  page.on('response', async (res) => {
    const url = new URL(res.url());
    const ctype = res.headers()['content-type'] || '';
    if (!record || !url.pathname.startsWith('/api/') || !ctype.startsWith('application/json')) return;
    let body;
    try {
      body = await res.json();
    } catch {
      return;  // a body the browser no longer holds (page gone)
    }
    appendFileSync(RESPONSES, JSON.stringify({ method: res.request().method(),
      path: template(url.pathname), status: res.status(), contentType: ctype, body }) + '\n');
  });
  return seen;
}

async function newPage(browser, name, record = true) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const seen = watch(page, name, record);
  await page.exposeFunction('__nrdCsp', (v) => seen.csp.push(`${name}: ${v}`));
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation',
      (e) => window.__nrdCsp(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { page, seen, ctx };
}

function clean(seen, what) {
  if (seen.csp.length) fail(`${what}: CSP violations: ${seen.csp.join('; ')}`);
  if (seen.errors.length) fail(`${what}: console errors: ${seen.errors.join('; ')}`);
  if (seen.dialogs.length) fail(`${what}: dialogs opened: ${seen.dialogs.join('; ')}`);
}

const text = (page, sel) => page.$eval(sel, (e) => e.textContent);

// Clicks an action button and waits for the answer line of that call.
async function clickAndAnswer(page, selector, expect) {
  await page.$eval('#answer-line', (e) => { e.textContent = ''; });
  await page.click(selector);
  await page.waitForFunction((exp) => {
    const t = document.querySelector('#answer-line').textContent;
    return t.includes(exp) && !t.endsWith('…');
  }, WAIT, expect);
  return {
    line: await text(page, '#answer-line'),
    body: JSON.parse(await text(page, '#answer-body')),
  };
}

// The page's ledger counts equal the API's (waits for the next refresh).
async function countsMatch(page) {
  const api = (await apiGet(OPEN, `${API}/overview`)).ledger;
  try {
    await page.waitForFunction((want) => {
      const got = {};
      for (const li of document.querySelectorAll('#ledger-counts li[data-state]'))
        got[li.dataset.state] = Number(li.querySelector('.count').textContent);
      return JSON.stringify(got) === JSON.stringify(want);
    }, WAIT, api);
  } catch {
    const got = await page.$$eval('#ledger-counts li', (l) => l.map((x) => x.textContent));
    fail(`the page's counts ${JSON.stringify(got)} never matched the API's ${JSON.stringify(api)}`);
  }
  return api;
}

async function openConsole(browser) {
  const { page, seen } = await newPage(browser, 'open');
  const res = await page.goto(`${OPEN}/`, { waitUntil: 'load' });
  const h = res.headers();
  if (!/default-src 'self'/.test(h['content-security-policy'] || '')) fail('/ has no strict CSP');
  if (h['x-content-type-options'] !== 'nosniff') fail('/ lacks X-Content-Type-Options: nosniff');
  if (!h['referrer-policy']) fail('/ lacks Referrer-Policy');
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  if (await page.$eval('#login', (e) => !e.hidden)) fail('the token prompt shows without API_TOKEN');
  clean(seen, 'first load');
  ok('the page loads with no console error and no CSP violation; CSP, nosniff and Referrer-Policy are sent');

  // Run now: a run that then appears in the list.
  const run = await clickAndAnswer(page, 'button[data-action="run"]', '200');
  const runId = run.body.result && run.body.result.runId;
  if (!runId || run.body.result.instancesRecreated < 1) fail(`Run now: ${run.line}`);
  await page.waitForSelector(`#runs tr[data-run="${runId}"]`, WAIT);
  ok(`Run now completed ${runId} (${run.body.result.instancesRecreated} recreated) and it is in the list`);

  const counts = await countsMatch(page);
  if (!(counts.failed >= 1)) fail(`the demo has no failed row: ${JSON.stringify(counts)}`);
  const failedCss = await page.$eval('#ledger-counts li[data-state="failed"]', (e) => e.className);
  if (!failedCss.includes('bad')) fail('the failed count does not stand out');
  ok(`the counts match the API (${JSON.stringify(counts)}), failed stands out`);

  // The run opens to its outcomes; the hostile name is text, not markup.
  await page.click(`#runs tr[data-run="${runId}"] button`);
  await page.waitForSelector(`#runs tr[data-outcomes-of="${runId}"] table`, WAIT);
  const names = await page.$$eval(`#runs tr[data-outcomes-of="${runId}"] .name`, (l) => l.map((e) => e.textContent));
  if (!names.includes(HOSTILE)) fail(`the hostile name is not shown as text: ${JSON.stringify(names)}`);
  const imgs = await page.$$eval('img', (l) => l.length);
  if (imgs !== 0) fail(`the page holds ${imgs} <img> elements: the hostile name became markup`);
  ok('a run opens to its outcomes; the name <img src=x onerror=alert(1)> is shown as text');

  // Dry run now: the ticker's failed migration is planned, its request shown redacted.
  // The ticker fails one a second, and Run now just recovered them: ask again
  // (at most 10 times, a second apart) until one has failed since.
  let dry;
  for (let i = 0; i < 10; i++) {
    dry = await clickAndAnswer(page, 'button[data-action="dry-run"]', '200');
    if (dry.body.result.failedJobsFound >= 2) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!dry.body.result.dryRun || dry.body.result.failedJobsFound < 2)
    fail(`Dry run now did not find the ticker's failures: ${dry.line} ${JSON.stringify(dry.body.result)}`);
  const planned = dry.body.result.outcomes.find((o) => o.action === 'planned');
  if (!planned) fail('the dry run planned nothing');
  await page.waitForSelector(`#runs tr[data-run="${dry.body.result.runId}"]`, WAIT);
  await page.click(`#runs tr[data-run="${dry.body.result.runId}"] button`);
  await page.waitForSelector(`#runs tr[data-outcomes-of="${dry.body.result.runId}"] details pre`, WAIT);
  const req = await text(page, `#runs tr[data-outcomes-of="${dry.body.result.runId}"] details pre`);
  if (!req.includes('"imageUrl"') || !req.includes('***')) fail(`the planned request is not shown redacted: ${req}`);
  ok(`Dry run now found ${dry.body.result.failedJobsFound} failed jobs (the ticker's); its planned request shows redacted`);

  // The screenshot (README's): the hostile run folded, the dry run open
  // with one planned request shown.
  await page.click(`#runs tr[data-run="${runId}"] button`);
  await page.waitForSelector(`#runs tr[data-outcomes-of="${runId}"]`, { hidden: true, ...WAIT });
  await page.$eval(`#runs tr[data-outcomes-of="${dry.body.result.runId}"] details`, (d) => { d.open = true; });
  await page.screenshot({ path: env('NRD_SCREENSHOT'), fullPage: true });
  ok(`screenshot written to ${env('NRD_SCREENSHOT')}`);

  // Retry on the failed row: the row is pending again in the ledger.
  const rowSel = `#attention tr[data-job="${NO_IMAGE_JOB}"]`;
  await page.waitForSelector(rowSel, WAIT);
  const retry = await clickAndAnswer(page, `${rowSel} button[data-action="retry"]`, '200');
  if (!retry.line.includes(`/recoveries/${NO_IMAGE_JOB}/retry`)) fail(`Retry sent: ${retry.line}`);
  const pending = await apiGet(OPEN, `${API}/recoveries?state=pending`);
  if (!pending.recoveries.some((r) => r.jobId === NO_IMAGE_JOB)) fail('after Retry the row is not pending in the ledger');
  ok('Retry sent POST …/retry and the ledger has the row pending again');

  // Pause: scheduler/status says paused, and so does the page.
  await clickAndAnswer(page, 'button[data-action="pause"]', '200');
  const status = await apiGet(OPEN, `${API}/scheduler/status`);
  if (status.paused !== true) fail(`after Pause scheduler/status says ${JSON.stringify(status)}`);
  await page.waitForFunction(() => document.querySelector('#sched-state').dataset.state === 'paused', WAIT);
  ok('Pause: scheduler/status says paused, and so does the page');

  // The retried row is open again: it leaves the list of rows needing a person.
  await page.waitForSelector(rowSel, { hidden: true, ...WAIT });
  await countsMatch(page);
  await clickAndAnswer(page, 'button[data-action="resume"]', '200');
  ok('Resume answered 200');
  clean(seen, 'the actions');
  return page;
}

async function abandonFlow(browser) {
  // The row is pending after the retry; a run fails it again (no image).
  const { page, seen } = await newPage(browser, 'abandon');
  await page.goto(`${OPEN}/`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  await clickAndAnswer(page, 'button[data-action="run"]', '200');
  const rowSel = `#attention tr[data-job="${NO_IMAGE_JOB}"]`;
  await page.waitForSelector(`${rowSel} button[data-action="abandon"]`, WAIT);
  await page.click(`${rowSel} button[data-action="abandon"]`);
  await page.waitForSelector(`${rowSel} form.abandon input`, WAIT);
  await page.type(`${rowSel} form.abandon input`, 'handled by hand in the browser test');
  await page.$eval('#answer-line', (e) => { e.textContent = ''; });
  await page.click(`${rowSel} form.abandon button[type="submit"]`);
  await page.waitForFunction(() => document.querySelector('#answer-line').textContent.includes('200'), WAIT);
  const rows = await apiGet(OPEN, `${API}/recoveries?state=abandoned`);
  const row = rows.recoveries.find((r) => r.jobId === NO_IMAGE_JOB);
  if (!row || row.lastError !== 'handled by hand in the browser test') fail(`Abandon: the ledger has ${JSON.stringify(row)}`);
  await page.waitForSelector(rowSel, { hidden: true, ...WAIT });
  clean(seen, 'abandon');
  ok('Abandon asks for a reason and the ledger keeps it');
}

// An error answer is shown as such: the service's 409 for a trigger while
// paused stands in for any refusal (the request is answered by the browser
// test, not the service, so no state changes).
async function errorShown(browser) {
  const { page, seen } = await newPage(browser, 'error', false);  // its 409 is made up here
  await page.setRequestInterception(true);
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/scheduler/pause')) {
      r.respond({ status: 409, contentType: 'application/json',
        body: JSON.stringify({ success: false, error: { code: 'SCHEDULER_PAUSED', message: 'the scheduler is paused' } }) });
    } else {
      r.continue();
    }
  });
  await page.goto(`${OPEN}/`, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  const a = await clickAndAnswer(page, 'button[data-action="pause"]', '409');
  if (!a.line.includes('SCHEDULER_PAUSED') || !(await page.$eval('#answer', (e) => e.className)).includes('bad'))
    fail(`an error answer is not shown as one: ${a.line}`);
  seen.errors = seen.errors.filter((e) => !/status of 409/.test(e));
  clean(seen, 'error');
  ok(`an error answer is shown: "${a.line}"`);
}

async function tokenFlow(browser) {
  const { page, seen } = await newPage(browser, 'token');
  await page.goto(`${TOKEN_URL}/`, { waitUntil: 'load' });
  await page.waitForSelector('#login:not([hidden])', WAIT);
  if (await page.$eval('#console', (e) => !e.hidden)) fail('the console shows before a token is given');

  await page.type('#token', 'not-the-token');
  await page.click('#login-form button[type="submit"]');
  await page.waitForFunction(() => /refused/.test(document.querySelector('#login-msg').textContent), WAIT);
  const msg = await text(page, '#login-msg');
  if (!/401/.test(msg) || !/API_TOKEN/.test(msg)) fail(`the wrong-token message is not clear: ${msg}`);
  if (await page.evaluate(() => Object.keys(sessionStorage).length) !== 0) fail('a refused token was kept');
  ok(`a wrong token shows: "${msg}"`);

  await page.type('#token', TOKEN);
  await page.click('#login-form button[type="submit"]');
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  await page.waitForSelector('#login', { hidden: true, ...WAIT });
  const kept = await page.evaluate(() => Object.values(sessionStorage));
  if (!kept.includes(TOKEN)) fail('the token is not kept in sessionStorage');
  const counts = (await apiGet(TOKEN_URL, `${API}/overview`, TOKEN)).ledger;
  const shown = await page.$$eval('#ledger-counts li[data-state]', (l) => l.length);
  if (shown !== Object.keys(counts).length) fail('the console did not load its data with the token');

  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  if (await page.$eval('#login', (e) => !e.hidden)) fail('the token was asked again after a reload');
  ok('the right token is asked once: kept in sessionStorage, the console loads, a reload does not ask again');

  // The only console errors allowed: the browser's own lines for the 401s.
  seen.errors = seen.errors.filter((e) => !/status of 401/.test(e));
  clean(seen, 'token');
}

const browser = await puppeteer.launch({
  executablePath: process.env.NRD_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir: (mkdirSync(env('NRD_PROFILE_DIR'), { recursive: true }), env('NRD_PROFILE_DIR')),
  args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
writeFileSync(RESPONSES, '');
try {
  await openConsole(browser);
  await abandonFlow(browser);
  await errorShown(browser);
  await tokenFlow(browser);
} finally {
  await browser.close();
}
