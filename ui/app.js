// The operator console of novita-recoveryd: one page over the service's own
// JSON API (openapi.yaml). Every value from the API is put into the page as
// text (textContent, createElement), never as HTML. POSTs send
// Content-Type: application/json, which a plain cross-site form cannot.

const API = '/api/instances/migration';
const TOKEN_KEY = 'novita-recoveryd.apiToken';
const REFRESH_MS = 5000;
const HOUR_MS = 3600000;
// Ledger states that wait for a person. Matched by name so that states added
// later (blocked, start_failed, ...) are shown without a change here.
const ATTENTION = /fail|block|defer|held|stuck/;
// Ledger states that are healthy ends.
const GOOD = /^(created|recreated|adopted)$/;
const CHART_ACTIONS = ['recreated', 'adopted', 'failed', 'abandoned'];
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);
const state = { timer: null, last: {}, outcomes: new Map(), open: new Set(), running: null, again: false, editing: false, runs: null };

// ---- small DOM helpers: text only ----

function el(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function ago(iso) {
  if (!iso) return '';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (!Number.isFinite(s)) return '';
  const abs = Math.abs(s);
  const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min`
    : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

const num = (v) => (v === null || v === undefined ? '—' : String(v));

// ---- the API ----

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

// Answers {status, ok, data, text}; status 0 when nothing came back.
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const init = { method, headers, cache: 'no-store' };
  if (method === 'POST') {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body || {});
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { status: 0, ok: false, data: null, text: `no answer: ${e.message}` };
  }
  const text = await res.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  return { status: res.status, ok: res.ok, data, text };
}

// ---- the token ----

// A 401: the token is missing or wrong. had: a token was sent.
function unauthorized(had) {
  stop();
  sessionStorage.removeItem(TOKEN_KEY);
  $('console').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  const msg = $('login-msg');
  msg.className = had ? 'msg bad' : 'msg';
  msg.textContent = had
    ? 'That token was refused (401 Unauthorized): it is not the API_TOKEN this service runs with. Enter it again.'
    : 'Enter the API token to see the console.';
  $('token').focus();
}

function onLogin(ev) {
  ev.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token').value = '';
  $('login-msg').textContent = 'Checking the token…';
  $('login-msg').className = 'msg';
  start();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
}

// ---- rendering ----

// Runs fn only when the answer changed since the last time (keeps an opened
// run or a half-typed reason on screen across refreshes).
function changed(key, r) {
  const text = `${r.status}:${r.text}`;
  if (state.last[key] === text) return false;
  state.last[key] = text;
  return true;
}

function errorText(r) {
  const e = r.data && r.data.error;
  if (e) return `${r.status} ${e.code}: ${e.message}`;
  return r.status ? `HTTP ${r.status}` : r.text;
}

function renderScheduler(r, runs) {
  const box = $('card-scheduler');
  const st = $('sched-state');
  const last = runs.ok && runs.data.runs.length ? runs.data.runs[0] : null;
  $('last-run').textContent = last ? `${when(last.startedAt)} (${ago(last.startedAt)}, ${last.state})` : '—';
  if (!r.ok) {
    st.textContent = 'unavailable';
    box.className = 'card warn';
    $('next-run').textContent = errorText(r);
    return;
  }
  const s = r.data;
  const text = s.paused ? 'paused' : 'running';
  st.textContent = text;
  st.dataset.state = text;
  box.className = s.paused ? 'card warn' : 'card';
  $('next-run').textContent = s.nextRunAt ? `${when(s.nextRunAt)} (${ago(s.nextRunAt)})`
    : s.paused ? 'none while paused' : 'none (interval 0: on request only)';
  $('interval').textContent = s.intervalMinutes ? `${s.intervalMinutes} min` : 'off';
  if (s.running) st.append(el('span', 'pill', 'run in progress'));
}

function renderOverview(r) {
  const list = $('ledger-counts');
  clear(list);
  if (!r.ok) {
    list.append(el('li', 'bad', errorText(r)));
    return;
  }
  const o = r.data;
  let attention = 0;
  for (const [name, count] of Object.entries(o.ledger)) {
    const cls = ATTENTION.test(name) && count > 0 ? 'bad' : GOOD.test(name) ? 'good' : '';
    if (ATTENTION.test(name)) attention += count;
    const li = el('li', cls, el('span', 'count', String(count)), el('span', 'name', name));
    li.dataset.state = name;
    list.append(li);
  }
  $('card-ledger').className = attention > 0 || o.brake.held > 0 ? 'card alert' : 'card';
  const brake = $('brake');
  brake.className = o.brake.held > 0 ? 'note bad' : 'note';
  brake.textContent = o.brake.held > 0
    ? `${o.brake.held} open rows held by the brake (at most ${o.brake.maxRecoveriesPerRun} per run)`
    : `${o.openRows} open; brake: ${o.brake.maxRecoveriesPerRun} per run`;

  $('circuit').textContent = o.circuit;
  $('card-circuit').className = o.circuit === 'closed' ? 'card' : 'card alert';
  $('dry-run-only').textContent = o.dryRunOnly ? 'MIGRATION_DRY_RUN: every run is a dry run' : '';

  const w = o.webhooks;
  $('webhook-pending').textContent = `${w.pending} pending`;
  $('card-webhooks').className = w.dead > 0 ? 'card alert' : 'card';
  $('webhook-detail').textContent = `${w.delivered} delivered, ${w.dead} dead` +
    (w.configured ? '' : ' · no WEBHOOK_URL: events wait in the outbox');
}

function attentionRow(row) {
  const tr = el('tr');
  tr.dataset.job = row.jobId;
  const inst = el('td', null, el('div', 'name', row.instanceName || '(no name)'),
    el('div', 'id', `${row.instanceId} · job ${row.jobId}`));
  const reason = el('td', 'reason', row.lastError || '—');
  const retry = el('button', null, 'Retry');
  retry.type = 'button';
  retry.dataset.action = 'retry';
  retry.addEventListener('click', () => act('POST', `${API}/recoveries/${encodeURIComponent(row.jobId)}/retry`, {}));
  const abandon = el('button', 'secondary', 'Abandon…');
  abandon.type = 'button';
  abandon.dataset.action = 'abandon';
  const cell = el('td', 'row-actions', retry, abandon);
  abandon.addEventListener('click', () => abandonForm(cell, row));
  tr.append(inst, el('td', null, el('span', 'pill bad', row.state)), reason,
    el('td', null, String(row.attempts)), el('td', null, ago(row.updatedAt)), cell);
  return tr;
}

// Abandon asks for a reason, in the row itself.
function abandonForm(cell, row) {
  clear(cell);
  state.editing = true;
  const form = el('form', 'abandon');
  const input = el('input');
  input.placeholder = 'why (kept in the ledger)';
  input.required = true;
  input.maxLength = 1000;
  input.setAttribute('aria-label', 'Reason for abandoning');
  const ok = el('button', 'danger', 'Abandon');
  ok.type = 'submit';
  const cancel = el('button', 'secondary', 'Cancel');
  cancel.type = 'button';
  form.append(input, ok, cancel);
  cell.append(form);
  input.focus();
  const done = () => {
    state.editing = false;
    state.last.attention = null;
    refresh();
  };
  cancel.addEventListener('click', done);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const reason = input.value.trim();
    if (!reason) return;
    await act('POST', `${API}/recoveries/${encodeURIComponent(row.jobId)}/abandon`, { reason });
    done();
  });
}

function renderAttention(rows) {
  if (state.editing) return;
  const body = $('attention').tBodies[0];
  clear(body);
  for (const row of rows) body.append(attentionRow(row));
  $('attention').hidden = rows.length === 0;
  $('attention-empty').hidden = rows.length !== 0;
}

function outcomeRow(o) {
  const tr = el('tr');
  const oldCell = el('td', null, el('div', 'name', o.instanceName || '(no name)'),
    el('div', 'id', o.instanceId || ''));
  const newCell = el('td', null, el('div', 'name', o.newName || '—'), el('div', 'id', o.newInstanceId || ''));
  const cls = o.action === 'failed' ? 'pill bad' : /recreated|adopted/.test(o.action) ? 'pill good' : 'pill';
  const detail = el('td', 'reason', o.reason || '');
  if (o.request) {
    const d = el('details', null, el('summary', null, 'planned create request (redacted)'),
      el('pre', null, JSON.stringify(o.request, null, 2)));
    detail.append(d);
  }
  tr.append(oldCell, el('td', 'arrow', '→'), newCell, el('td', null, el('span', cls, o.action)), detail);
  return tr;
}

function outcomesView(run) {
  const box = el('div', 'outcomes');
  if (!run) return box;
  const res = run.result;
  const outs = res && Array.isArray(res.outcomes) ? res.outcomes : [];
  if (!outs.length) {
    box.append(el('p', 'note', run.state === 'running' ? 'Still running…' : 'This run touched no recovery.'));
    return box;
  }
  const table = el('table', 'inner');
  const head = el('tr');
  for (const h of ['Old instance', '', 'New instance', 'Action', 'Reason / request']) head.append(el('th', null, h));
  table.append(el('thead', null, head));
  const tb = el('tbody');
  for (const o of outs) tb.append(outcomeRow(o));
  table.append(tb);
  box.append(table);
  return box;
}

async function toggleRun(runId) {
  if (state.open.has(runId)) {
    state.open.delete(runId);
  } else {
    state.open.add(runId);
    if (!state.outcomes.has(runId)) {
      const r = await api('GET', `${API}/runs/${encodeURIComponent(runId)}`);
      if (r.ok && r.data.state !== 'running') state.outcomes.set(runId, r.data);
      else if (!r.ok) showAnswer('GET', `${API}/runs/${runId}`, r);
      else state.outcomes.set(runId, null);
    }
  }
  state.last.runs = null;
  renderRuns(state.runs);
}

function renderRuns(r) {
  state.runs = r;
  const body = $('runs').tBodies[0];
  clear(body);
  if (!r.ok) {
    body.append(el('tr', null, el('td', 'bad', errorText(r))));
    return;
  }
  $('runs-empty').hidden = r.data.runs.length !== 0;
  for (const run of r.data.runs) {
    const open = state.open.has(run.runId);
    const btn = el('button', 'link', `${open ? '▾' : '▸'} ${when(run.startedAt)}`);
    btn.type = 'button';
    btn.setAttribute('aria-expanded', String(open));
    const tr = el('tr', run.errors > 0 || run.state === 'failed' ? 'run bad' : 'run');
    tr.dataset.run = run.runId;
    btn.addEventListener('click', () => toggleRun(run.runId));
    const outcome = run.state === 'done' ? (run.errors > 0 ? 'done, with errors' : 'done') : run.state;
    tr.append(el('td', null, btn), el('td', null, run.trigger + (run.dryRun ? ' · dry run' : '')),
      el('td', null, outcome), el('td', null, num(run.totalChecked)), el('td', null, num(run.failedJobsFound)),
      el('td', null, num(run.instancesRecreated)), el('td', null, num(run.errors)),
      el('td', null, num(run.deferred)), el('td', null, duration(run.durationMs)));
    body.append(tr);
    if (open) {
      const td = el('td', null, outcomesView(state.outcomes.get(run.runId)));
      td.colSpan = 9;
      const detail = el('tr', 'detail', td);
      detail.dataset.outcomesOf = run.runId;
      body.append(detail);
    }
  }
}

// ---- the chart: finished recoveries per hour, by action, and time to recovery ----

function chartData(stats) {
  const hours = stats.hours;
  const from = new Date(stats.from).getTime();
  const perHour = Array.from({ length: hours }, () => ({ total: 0, by: {}, ttrSum: 0, ttrN: 0 }));
  const actions = new Set(CHART_ACTIONS);
  for (const b of stats.buckets) {
    const i = Math.floor((new Date(b.hour).getTime() - from) / HOUR_MS);
    if (i < 0 || i >= hours) continue;
    const h = perHour[i];
    h.by[b.action] = (h.by[b.action] || 0) + b.count;
    h.total += b.count;
    actions.add(b.action);
    if (b.timeToRecoveryMs) {
      h.ttrSum += b.timeToRecoveryMs.avg * b.count;
      h.ttrN += b.count;
    }
  }
  return { hours, from, perHour, actions: [...actions] };
}

function actionClass(a) {
  return CHART_ACTIONS.includes(a) ? `a-${a}` : 'a-other';
}

function renderChart(r) {
  const box = $('chart-box');
  const legend = $('chart-legend');
  clear(box);
  clear(legend);
  if (!r.ok) {
    box.append(el('p', 'bad', errorText(r)));
    return;
  }
  const d = chartData(r.data);
  const W = 960, H = 240, L = 40, R = 56, T = 12, B = 30;
  const pw = W - L - R, ph = H - T - B, bw = pw / d.hours;
  const maxCount = Math.max(1, ...d.perHour.map((h) => h.total));
  const maxTtr = Math.max(1, ...d.perHour.map((h) => (h.ttrN ? h.ttrSum / h.ttrN : 0)));
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart', id: 'chart' });
  root.append(svg('title'));
  root.firstChild.textContent = 'Finished recoveries per hour by action, and average time to recovery';

  const axis = svg('g', { class: 'axis' });
  for (const v of [0, Math.ceil(maxCount / 2), maxCount]) {
    const y = T + ph - (v / maxCount) * ph;
    axis.append(svg('line', { x1: L, x2: L + pw, y1: y, y2: y, class: 'grid' }));
    const t = svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' });
    t.textContent = String(v);
    axis.append(t);
  }
  for (let i = 0; i <= d.hours; i++) {
    const at = new Date(d.from + i * HOUR_MS);
    if (at.getUTCHours() !== 0) continue;
    const x = L + i * bw;
    axis.append(svg('line', { x1: x, x2: x, y1: T, y2: T + ph, class: 'day' }));
    const t = svg('text', { x: x + 3, y: H - 10 });
    t.textContent = at.toISOString().slice(5, 10);
    axis.append(t);
  }
  const rt = svg('text', { x: L + pw + 6, y: T + 10 });
  rt.textContent = duration(Math.round(maxTtr));
  axis.append(rt);
  root.append(axis);

  const bars = svg('g', { class: 'bars' });
  const points = [];
  d.perHour.forEach((h, i) => {
    let y = T + ph;
    const x = L + i * bw;
    for (const a of d.actions) {
      const c = h.by[a] || 0;
      if (!c) continue;
      const hgt = (c / maxCount) * ph;
      y -= hgt;
      const rect = svg('rect', { x: x + 0.5, y, width: Math.max(1, bw - 1), height: hgt, class: actionClass(a) });
      const title = svg('title');
      title.textContent = `${when(new Date(d.from + i * HOUR_MS).toISOString())}: ${c} ${a}`;
      rect.append(title);
      bars.append(rect);
    }
    if (h.ttrN) points.push([x + bw / 2, T + ph - (h.ttrSum / h.ttrN / maxTtr) * ph, h.ttrSum / h.ttrN]);
  });
  root.append(bars);
  if (points.length) {
    const line = svg('polyline', { points: points.map((p) => `${p[0]},${p[1]}`).join(' '), class: 'ttr' });
    root.append(line);
    for (const p of points) {
      const c = svg('circle', { cx: p[0], cy: p[1], r: 2.5, class: 'ttr-dot' });
      const title = svg('title');
      title.textContent = `time to recovery: ${duration(Math.round(p[2]))}`;
      c.append(title);
      root.append(c);
    }
  }
  box.append(root);

  for (const a of d.actions) {
    legend.append(el('li', null, el('span', `swatch ${actionClass(a)}`), a));
  }
  legend.append(el('li', null, el('span', 'swatch ttr-swatch'), 'time to recovery (right axis)'));
  const total = d.perHour.reduce((s, h) => s + h.total, 0);
  const rec = d.perHour.reduce((s, h) => s + (h.by.recreated || 0) + (h.by.adopted || 0), 0);
  const ttrN = d.perHour.reduce((s, h) => s + h.ttrN, 0);
  const ttr = ttrN ? d.perHour.reduce((s, h) => s + h.ttrSum, 0) / ttrN : null;
  $('chart-summary').textContent = total
    ? `${total} finished, ${rec} recovered` + (ttr !== null ? `; average time to recovery ${duration(Math.round(ttr))}` : '')
    : 'No recovery finished in the last 7 days.';
}

// ---- actions ----

function showAnswer(method, path, r) {
  const box = $('answer');
  box.hidden = false;
  box.className = r.ok ? 'answer ok' : 'answer bad';
  const e = r.data && r.data.error;
  $('answer-line').textContent = `${method} ${path} → ${r.status ? r.status : 'no answer'} ` +
    (r.ok ? 'OK' : e ? `${e.code}: ${e.message}` : r.text.slice(0, 200));
  $('answer-body').textContent = r.data ? JSON.stringify(r.data, null, 2) : r.text;
}

async function act(method, path, body) {
  const buttons = document.querySelectorAll('button[data-action]');
  for (const b of buttons) b.disabled = true;
  $('answer-line').textContent = `${method} ${path} …`;
  $('answer').hidden = false;
  const had = token() !== '';
  const r = await api(method, path, body);
  for (const b of document.querySelectorAll('button[data-action]')) b.disabled = false;
  if (r.status === 401) {
    unauthorized(had);
    return r;
  }
  showAnswer(method, path, r);
  await refresh();
  return r;
}

const ACTIONS = {
  run: ['POST', `${API}/check-failed`, { immediate: true }],
  'dry-run': ['POST', `${API}/check-failed`, { immediate: true, dryRun: true }],
  pause: ['POST', `${API}/scheduler/pause`, {}],
  resume: ['POST', `${API}/scheduler/resume`, {}],
};

// ---- refresh loop ----

async function attentionRows(overview) {
  if (!overview.ok) return [];
  const names = Object.entries(overview.data.ledger).filter(([n, c]) => ATTENTION.test(n) && c > 0);
  const lists = await Promise.all(names.map(([n]) => api('GET', `${API}/recoveries?state=${encodeURIComponent(n)}&limit=200`)));
  return lists.filter((l) => l.ok).flatMap((l) => l.data.recoveries);
}

async function refreshOnce() {
  const had = token() !== '';
  const [ov, sched, runs, stats] = await Promise.all([
    api('GET', `${API}/overview`), api('GET', `${API}/scheduler/status`),
    api('GET', `${API}/runs?limit=20`), api('GET', `${API}/stats/hourly?days=7`)]);
  if ([ov, sched, runs, stats].some((r) => r.status === 401)) {
    unauthorized(had);
    return;
  }
  $('console').hidden = false;
  $('login').hidden = true;
  $('signout').hidden = !had;
  renderScheduler(sched, runs);
  if (changed('overview', ov)) renderOverview(ov);
  if (changed('runs', runs)) renderRuns(runs);
  if (changed('stats', stats)) renderChart(stats);
  const rows = await attentionRows(ov);
  const key = JSON.stringify(rows);
  if (!state.editing && state.last.attention !== key) {
    state.last.attention = key;
    renderAttention(rows);
  }
  const down = [ov, sched, runs, stats].find((r) => r.status === 0);
  $('banner').hidden = !down;
  $('banner').textContent = down ? `The service did not answer: ${down.text}` : '';
  $('updated').textContent = `Updated ${when(new Date().toISOString())}; refreshes every ${REFRESH_MS / 1000} s.`;
  document.body.dataset.ready = 'true';
}

// One refresh at a time; a refresh asked for during one runs right after it,
// and the caller waits for that.
function refresh() {
  if (state.running) {
    state.again = true;
    return state.running;
  }
  state.running = (async () => {
    try {
      do {
        state.again = false;
        await refreshOnce();
      } while (state.again && state.timer);
    } finally {
      state.running = null;
    }
  })();
  return state.running;
}

function stop() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

function start() {
  stop();
  state.last = {};
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

$('login-form').addEventListener('submit', onLogin);
$('signout').addEventListener('click', signOut);
for (const b of document.querySelectorAll('.buttons button[data-action]')) {
  const [method, path, body] = ACTIONS[b.dataset.action];
  b.addEventListener('click', () => act(method, path, body));
}
start();
