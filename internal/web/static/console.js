// The operator's console: plain DOM + fetch, like the shop's page.
// Server text is only ever written with textContent, never innerHTML.
// The session is an HttpOnly cookie: this script never sees the token after
// signing in, and the browser sends the cookie (and its Origin) itself.
'use strict';

const LIST_POLL_MS = 3000;
const STUCK_POLL_MS = 10000; // the books' audit reads every order
const DETAIL_POLL_MS = 1000;
const PAGE_SIZE = 25;

const $ = (selector) => document.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const formatTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

function say(text, kind = 'info') {
  $('#message').textContent = text;
  $('#message').dataset.kind = kind;
}

async function send(method, path, body) {
  const init = { method, cache: 'no-store', credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch {
    return null;
  }
}

async function getJson(path) {
  const res = await send('GET', path);
  if (!res) return { res, data: null };
  if (res.status === 401) showSignIn();
  return { res, data: res.ok ? await res.json().catch(() => null) : null };
}

async function errorText(res) {
  if (!res) return 'The server is unreachable.';
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === 'string') return parsed.error;
  } catch { /* not JSON */ }
  return text.trim().slice(0, 200) || `${res.status} ${res.statusText}`;
}

/* ---------- Signing in ---------- */

let signedIn = false;

function showSignIn() {
  signedIn = false;
  $('#signin').hidden = false;
  $('#console').hidden = true;
  $('#signout').hidden = true;
  $('#whoami').textContent = '';
}

function showConsole(session) {
  signedIn = true;
  $('#signin').hidden = true;
  $('#console').hidden = false;
  $('#signout').hidden = !session.token_required;
  $('#whoami').textContent = session.token_required ? `Signed in (${session.actor})` : 'No OPERATOR_TOKEN: open to anyone';
  refreshAll();
}

async function checkSession() {
  const { data } = await getJson('/api/operator/session');
  if (data?.operator) showConsole(data); else showSignIn();
}

async function signIn(event) {
  event.preventDefault();
  $('#signin-button').disabled = true;
  try {
    const res = await send('POST', '/api/operator/session', { token: $('#token').value });
    $('#token').value = '';
    if (res?.ok) {
      $('#signin-error').hidden = true;
      showConsole(await res.json());
    } else {
      $('#signin-error').textContent = await errorText(res);
      $('#signin-error').hidden = false;
    }
  } finally {
    $('#signin-button').disabled = false;
  }
}

async function signOut() {
  await send('DELETE', '/api/operator/session');
  say('Signed out.');
  showSignIn();
}

/* ---------- Stuck work ---------- */

function stuckItem(text, workflowId) {
  const li = document.createElement('li');
  if (workflowId) {
    const a = workflowLink(workflowId);
    li.append(a, ' ', text);
  } else {
    li.textContent = text;
  }
  return li;
}

async function refreshStuck() {
  const { data } = await getJson('/api/console/stuck');
  if (!data) return;
  const executors = Object.entries(data.stale_executors ?? {});
  $('#stuck-deadline').textContent = String(data.past_deadline.length);
  $('#stuck-dispatch').textContent = String(data.dispatch_overdue.length);
  $('#stuck-executors').textContent = String(executors.length);
  $('#stuck-stale').textContent = String(data.stale_workflows.length);
  $('#stuck-failed').textContent = String(data.failed.length);
  $('#stuck-breaches').textContent = String(data.breaches.length);
  const items = [
    ...data.past_deadline.map((id) => stuckItem('pending past its payment deadline', id)),
    ...data.dispatch_overdue.map((id) => stuckItem('paid, its dispatch overdue: no sweep dispatched it', id)),
    ...executors.map(([id, at]) => stuckItem(`instance ${id} silent since ${formatTime(at)}`)),
    ...data.stale_workflows.map((w) => stuckItem(`owned by silent ${w.executor_id}`, w.workflow_id)),
    ...data.failed.map((w) => stuckItem(`${w.status}: ${w.error || 'no error recorded'}`, w.workflow_id)),
    ...data.breaches.map((b) => stuckItem(b)),
  ];
  $('#stuck-list').replaceChildren(...items);
}

/* ---------- Workflows ---------- */

let offset = 0;

function workflowLink(id) {
  const a = document.createElement('a');
  a.href = `#wf=${encodeURIComponent(id)}`;
  a.className = 'mono';
  a.textContent = id;
  return a;
}

function filterQuery() {
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
  const put = (name, value) => { if (value.trim()) q.set(name, value.trim()); };
  put('status', $('#f-status').value);
  put('name', $('#f-name').value);
  put('executor', $('#f-executor').value);
  put('version', $('#f-version').value);
  put('prefix', $('#f-prefix').value);
  for (const [name, sel] of [['after', '#f-after'], ['before', '#f-before']]) {
    const value = $(sel).value;
    if (value) q.set(name, new Date(value).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  }
  return q;
}

async function refreshWorkflows() {
  const { res, data } = await getJson(`/api/console/workflows?${filterQuery()}`);
  if (!data) {
    if (res && res.status !== 401) say(await errorText(res), 'error');
    return;
  }
  const rows = data.workflows.map((w) => {
    const tr = document.createElement('tr');
    tr.dataset.workflowId = w.workflow_id;
    const cell = (text, cls) => {
      const td = document.createElement('td');
      if (cls) td.className = cls;
      td.textContent = text;
      return td;
    };
    const idCell = document.createElement('td');
    idCell.append(workflowLink(w.workflow_id));
    const statusCell = document.createElement('td');
    const status = Object.assign(document.createElement('span'), { className: 'status', textContent: w.status });
    status.dataset.status = w.status;
    statusCell.append(status);
    tr.append(idCell, cell(w.name, 'name'), statusCell, cell(formatTime(w.created_at)), cell(w.executor_id),
      cell(w.app_version), cell(w.error || '', 'error'));
    return tr;
  });
  $('#wf-body').replaceChildren(...rows);
  $('#wf-empty').hidden = rows.length > 0;
  $('#prev').disabled = offset === 0;
  $('#next').disabled = rows.length < PAGE_SIZE;
  $('#page-info').textContent = rows.length ? `${offset + 1}–${offset + rows.length}` : '';
}

/* ---------- One workflow ---------- */

let shownId = null;
let shown = null; // the detail last rendered

function selectedId() {
  const m = /^#wf=(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function pretty(value) {
  return value === null || value === undefined ? '—' : JSON.stringify(value, null, 2);
}

function renderDetail(d) {
  const w = d.workflow;
  shown = d;
  $('#detail').hidden = false;
  $('#d-id').textContent = w.workflow_id;
  $('#d-name').textContent = w.name;
  $('#d-status').textContent = w.status;
  $('#d-status').dataset.status = w.status;
  $('#d-attempts').textContent = String(w.attempts);
  $('#d-executor').textContent = w.executor_id || '—';
  $('#d-version').textContent = w.app_version || '—';
  $('#d-created').textContent = formatTime(w.created_at);
  $('#d-forked-from-row').hidden = !w.forked_from;
  if (w.forked_from) {
    $('#d-forked-from').textContent = w.forked_from;
    $('#d-forked-from').href = `#wf=${encodeURIComponent(w.forked_from)}`;
  }
  $('#d-forks-row').hidden = d.forks.length === 0;
  $('#d-forks').replaceChildren(...d.forks.flatMap((id, i) => (i ? [', ', workflowLink(id)] : [workflowLink(id)])));
  $('#d-error').hidden = !w.error;
  $('#d-error').textContent = w.error || '';
  $('#d-order').hidden = !d.order;
  if (d.order) {
    $('#d-order-id').textContent = String(d.order.order_id);
    $('#d-order-status').textContent = d.order.status;
    $('#d-order-status').dataset.status = d.order.status;
    $('#d-order-product').textContent = `${d.order.quantity} × ${d.order.product}`;
    $('#d-order-payment').textContent = d.order.payment_id;
    $('#d-order-email-row').hidden = !d.order.email;
    $('#d-order-email').textContent = d.order.email || '';
    $('#d-ledger').textContent = d.ledger.length
      ? d.ledger.map((e) => `${e.reason} ${e.delta > 0 ? '+' : ''}${e.delta} of product ${e.product_id}`).join(', ')
      : 'no moves';
  }
  // Only the buttons that would do something: DBOS resumes no SUCCESS or
  // ERROR workflow, and an ended one cannot be cancelled.
  $('#d-cancel').hidden = !w.cancellable;
  $('#d-resume').hidden = !w.resumable;
  $('#d-input').textContent = pretty(d.input);
  $('#d-output').textContent = pretty(d.output);

  const rows = d.steps.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.stepId = String(s.step_id);
    tr.dataset.stepName = s.name;
    const cell = (text, cls) => {
      const td = document.createElement('td');
      if (cls) td.className = cls;
      td.textContent = text;
      return td;
    };
    const took = s.started_at && s.completed_at ? `${Date.parse(s.completed_at) - Date.parse(s.started_at)} ms` : '—';
    const result = cell(s.error ? `error: ${s.error}` : pretty(s.output), s.error ? 'result mono failed' : 'result mono');
    if (s.child_workflow_id) result.append(' child ', workflowLink(s.child_workflow_id));
    const forkCell = document.createElement('td');
    if (!s.fork_refused) {
      const button = Object.assign(document.createElement('button'), { type: 'button', className: 'fork', textContent: 'Fork from here…' });
      forkCell.append(button);
      // A failed checkout is rewound in place, under its own id.
      if (w.rewindable) {
        forkCell.append(' ', Object.assign(document.createElement('button'), { type: 'button', className: 'rewind', textContent: 'Rewind to here…' }));
      }
    } else {
      forkCell.className = 'muted fork-refused';
      forkCell.title = s.fork_refused;
      forkCell.textContent = 'no fork';
    }
    tr.append(cell(String(s.step_id)), cell(s.name, 'name'), cell(formatTime(s.started_at)), cell(took), result, forkCell);
    return tr;
  });
  $('#steps-body').replaceChildren(...rows);
}

// The shown workflow is pushed by server-sent events as its steps are
// recorded; refreshDetail polls it only while no stream is open.
let detailSource = null;

function watchDetail(id) {
  if (detailSource) detailSource.close();
  detailSource = null;
  if (!id || typeof EventSource !== 'function') return;
  detailSource = new EventSource(`/api/workflows/${encodeURIComponent(id)}/events`);
  detailSource.addEventListener('update', (event) => {
    if (id === selectedId()) renderDetail(JSON.parse(event.data));
  });
}

const streaming = () => detailSource !== null && detailSource.readyState === EventSource.OPEN;

async function refreshDetail() {
  const id = selectedId();
  if (id !== shownId) {
    shownId = id;
    shown = null;
    hideConfirm();
    $('#d-revealed').hidden = true;
    $('#d-revealed-data').textContent = '';
    watchDetail(id);
  }
  if (!id) {
    $('#detail').hidden = true;
    return;
  }
  const { res, data } = await getJson(`/api/workflows/${encodeURIComponent(id)}`);
  if (id !== selectedId()) return; // another was chosen meanwhile
  if (data) renderDetail(data);
  else if (res && res.status !== 401) say(await errorText(res), 'error');
}

/* ---------- Actions, each behind a confirmation ---------- */

let pending = null; // {path, body, done}

function askConfirm(text, path, body, done) {
  pending = { path, body, done };
  $('#confirm-text').textContent = text;
  $('#confirm').hidden = false;
  $('#confirm-yes').focus();
}

function hideConfirm() {
  pending = null;
  $('#confirm').hidden = true;
}

async function confirmed() {
  if (!pending) return;
  const { path, body, done } = pending;
  hideConfirm();
  const res = await send('POST', path, body);
  if (res?.ok) say(done(await res.json().catch(() => ({}))));
  else say(await errorText(res), 'error');
  await Promise.all([refreshDetail(), refreshWorkflows(), refreshActions(), refreshStuck()]);
}

function action(kind) {
  const w = shown?.workflow;
  if (!w) return;
  const path = `/api/workflows/${encodeURIComponent(w.workflow_id)}/${kind}`;
  if (kind === 'cancel') {
    askConfirm(`Cancel workflow ${w.workflow_id}? It stops at its next step; a checkout awaiting payment keeps its order and stock until resumed.`,
      path, undefined, () => `Workflow ${w.workflow_id} cancelled.`);
  } else {
    askConfirm(`Resume workflow ${w.workflow_id} from its last checkpoint?`, path, undefined,
      () => `Workflow ${w.workflow_id} resumed from its last checkpoint.`);
  }
}

function fork(button) {
  const w = shown?.workflow;
  const row = button.closest('tr');
  if (!w || !row) return;
  const step = Number(row.dataset.stepId);
  askConfirm(`Fork workflow ${w.workflow_id} from step ${step} (${row.dataset.stepName})? A new workflow, with a new id, replays the steps before it and runs on from there.`,
    `/api/workflows/${encodeURIComponent(w.workflow_id)}/fork`, { start_step: step }, (data) => {
      if (data.fork_id) location.hash = `#wf=${encodeURIComponent(data.fork_id)}`;
      return `Forked as ${data.fork_id}.`;
    });
}

function rewind(button) {
  const w = shown?.workflow;
  const row = button.closest('tr');
  if (!w || !row) return;
  const step = Number(row.dataset.stepId);
  askConfirm(`Rewind workflow ${w.workflow_id} to step ${step} (${row.dataset.stepName})? It keeps its id and order, drops its checkpoints from this step on and runs them again.`,
    `/api/workflows/${encodeURIComponent(w.workflow_id)}/rewind`, { start_step: step },
    () => `Workflow ${w.workflow_id} rewound to step ${step}.`);
}

// bulk cancels or resumes every workflow the filter selects (not only
// this page's), once the operator confirms their number: the server
// refuses if the number changed meanwhile.
async function bulk(kind) {
  const q = filterQuery();
  q.delete('limit');
  q.delete('offset');
  const path = `/api/console/bulk/${kind}?${q}`;
  const { res, data } = await getJson(path);
  if (!data) {
    say(await errorText(res), 'error');
    return;
  }
  const done = kind === 'cancel' ? 'cancelled' : 'resumed';
  if (data.count === 0) {
    say(`No workflow the filter selects can be ${done}.`);
    return;
  }
  askConfirm(`${kind === 'cancel' ? 'Cancel' : 'Resume'} ${data.count} workflow${data.count === 1 ? '' : 's'}, every one the filter selects?`,
    path, { count: data.count }, (answer) => {
      const refused = Object.keys(answer.refused || {}).length;
      return `${(answer.done || []).length} of ${answer.count} ${done}${refused ? `; ${refused} refused (see the audit log)` : ''}.`;
    });
}

// reveal shows, once, what the console masks of the shown workflow's
// customer: the order's email, the recorded input and steps.
function reveal() {
  const w = shown?.workflow;
  if (!w) return;
  askConfirm(`Reveal the customer's data of workflow ${w.workflow_id}? The reveal is written to the audit log.`,
    `/api/workflows/${encodeURIComponent(w.workflow_id)}/reveal`, undefined, (d) => {
      const steps = Object.fromEntries((d.steps || []).map((s) => [`${s.step_id} ${s.name}`, s.output]));
      $('#d-revealed-data').textContent = pretty({ email: d.order?.email ?? null, input: d.input, steps });
      $('#d-revealed').hidden = false;
      return `Revealed the customer's data of ${w.workflow_id}.`;
    });
}

/* ---------- Audit log ---------- */

async function refreshActions() {
  const { data } = await getJson('/api/operator/actions');
  if (!Array.isArray(data)) return;
  $('#actions-body').replaceChildren(...data.map((a) => {
    const tr = document.createElement('tr');
    const wf = document.createElement('td');
    wf.append(workflowLink(a.workflow_id));
    tr.append(...[formatTime(a.at), a.actor, a.address, `${a.action} ${a.detail}`.trim()].map((text) =>
      Object.assign(document.createElement('td'), { textContent: text })), wf,
    Object.assign(document.createElement('td'), { textContent: a.outcome, className: 'outcome' }));
    return tr;
  }));
}

/* ---------- Wiring ---------- */

function refreshAll() {
  return Promise.all([refreshStuck(), refreshWorkflows(), refreshDetail(), refreshActions()]);
}

async function find(event) {
  event.preventDefault();
  const q = $('#find-q').value.trim();
  const { res, data } = await getJson(`/api/console/find?q=${encodeURIComponent(q)}`);
  if (data?.workflow_id) {
    location.hash = `#wf=${encodeURIComponent(data.workflow_id)}`;
    say(`Order ${q} is checkout ${data.workflow_id}.`);
  } else {
    say(await errorText(res), 'error');
  }
}

async function poll(ms, fn) {
  for (;;) {
    await sleep(ms);
    if (!signedIn) continue;
    try { await fn(); } catch (err) { console.error(err); }
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  $('#find-form').addEventListener('submit', find);
  $('#filters').addEventListener('submit', (event) => { event.preventDefault(); offset = 0; refreshWorkflows(); });
  $('#prev').addEventListener('click', () => { offset = Math.max(0, offset - PAGE_SIZE); refreshWorkflows(); });
  $('#next').addEventListener('click', () => { offset += PAGE_SIZE; refreshWorkflows(); });
  $('#d-cancel').addEventListener('click', () => action('cancel'));
  $('#d-resume').addEventListener('click', () => action('resume'));
  $('#d-reveal').addEventListener('click', reveal);
  $('#bulk-cancel').addEventListener('click', () => bulk('cancel'));
  $('#bulk-resume').addEventListener('click', () => bulk('resume'));
  $('#confirm-yes').addEventListener('click', confirmed);
  $('#confirm-no').addEventListener('click', hideConfirm);
  $('#steps-body').addEventListener('click', (event) => {
    const button = event.target.closest('button.fork, button.rewind');
    if (button?.classList.contains('fork')) fork(button);
    else if (button) rewind(button);
  });
  window.addEventListener('hashchange', () => { if (signedIn) refreshDetail(); });
  checkSession();
  poll(DETAIL_POLL_MS, () => (streaming() ? null : refreshDetail()));
  poll(LIST_POLL_MS, () => Promise.all([refreshWorkflows(), refreshActions()]));
  poll(STUCK_POLL_MS, refreshStuck);
});
