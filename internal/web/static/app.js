// Widget store front end: plain DOM + fetch, no framework.
// The server owns all state; this page polls it and sends commands.
// Server text is only ever written with textContent, never innerHTML.
'use strict';

const REQUEST_TIMEOUT_MS = 15000; // a request stuck on a dying server must not block retries
const RETRY_DELAY_MS = 1000;
const RETRY_WINDOW_MS = 60000;
const ORDER_POLL_MS = 500;
const ORDERS_POLL_MS = 1000;
const PRODUCTS_POLL_MS = 3000; // stock also changes when other orders are placed or cancelled
const OPERATOR_POLL_MS = 3000;
const RETRYABLE = new Set([502, 503, 504]); // what a proxy answers while the server is down

const $ = (selector) => document.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const formatCents = (cents) => money.format((Number(cents) || 0) / 100);
const clone = (templateSel) => $(templateSel).content.firstElementChild.cloneNode(true);

function say(text, kind = 'info') {
  $('#message').textContent = text;
  $('#message').dataset.kind = kind; // info | warn | error, for styling
}

/* ---------- Talking to the server ---------- */

// connEpoch is bumped on every failure. A success only hides the banner if its
// request was *started* after the last failure, so an old request finishing
// late cannot hide the banner while the server is actually down.
let connEpoch = 0;

function markDown() {
  connEpoch += 1;
  $('#connection').hidden = false;
}

function markUp(startEpoch) {
  if ($('#connection').hidden || startEpoch !== connEpoch) return;
  $('#connection').hidden = true;
  if ($('#message').dataset.kind === 'warn') say('Connection restored.');
}

const isUnavailable = (res) => !res || RETRYABLE.has(res.status);

// One request. Resolves to the Response, or null when the server could not be
// reached at all (network error, connection reset by a crash, timeout).
async function send(method, path, body) {
  const startEpoch = connEpoch;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  const init = { method, cache: 'no-store', signal: abort.signal };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  try {
    const res = await fetch(path, init);
    if (RETRYABLE.has(res.status)) markDown(); else markUp(startEpoch);
    return res;
  } catch {
    markDown();
    return null;
  } finally {
    clearTimeout(timer);
  }
}

// A 503 whose checkout has ended (the payment provider was out of reach:
// nothing charged, the order cancelled): the same key answers the same, and
// only a new one may go through.
const keySpent = async (res) => res?.status === 503 && (await res.clone().json().catch(() => null))?.retry_with_new_key === true;

// Repeats the *same* request while the server is unreachable. Only used for
// idempotent endpoints (keyed checkout, payment webhook), so retrying after a
// crash can never buy or pay twice. Resolves to the last response (or null).
async function sendWithRetry(method, path, body, onRetry) {
  const deadline = Date.now() + RETRY_WINDOW_MS;
  for (let attempt = 1; ; attempt += 1) {
    const res = await send(method, path, body);
    if (!isUnavailable(res) || await keySpent(res) || Date.now() + RETRY_DELAY_MS > deadline) return res;
    onRetry(attempt);
    await sleep(RETRY_DELAY_MS);
  }
}

async function getJson(path) {
  const res = await send('GET', path);
  if (!res || !res.ok) return { res, data: null };
  return { res, data: await res.json().catch(() => null) };
}

// Error answers are JSON {"error": "..."}; fall back to whatever came back.
async function errorText(res) {
  if (isUnavailable(res)) return 'The server is unreachable (gave up after 60 s). Please try again.';
  const text = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.error === 'string') return parsed.error;
  } catch { /* not JSON */ }
  return text.trim().slice(0, 200) || `${res.status} ${res.statusText}`.trim();
}

// Runs fn until it returns false, one call at a time, so slow answers never pile up.
async function every(ms, fn) {
  for (;;) {
    try { if (await fn() === false) return; } catch (err) { console.error(err); }
    await sleep(ms);
  }
}

// Makes body's rows match items, in the server's order. Each item keeps its
// <tr> (rows.get(key)), updated in place, so keyboard focus survives a refresh.
function syncRows(body, rows, items, keyOf, templateSel, fill) {
  const keys = new Set(items.map(keyOf));
  for (const [key, row] of rows) {
    if (!keys.has(key)) { row.remove(); rows.delete(key); }
  }
  items.forEach((item, i) => {
    const key = keyOf(item);
    if (!rows.has(key)) rows.set(key, clone(templateSel));
    const row = rows.get(key);
    fill(row, item, key);
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
  });
}

// A POST from an operator's button: the button is off while it runs, and
// #message shows describe(answer JSON) or the server's error.
async function command(button, path, describe) {
  button.disabled = true;
  try {
    const res = await send('POST', path);
    if (res && res.ok) say(describe(await res.json().catch(() => ({}))));
    else say(res ? await errorText(res) : 'The server is unreachable.', 'error');
  } finally {
    button.disabled = false;
  }
}

// randomUUID only exists in secure contexts (https, localhost); when the demo
// is opened over plain http on a LAN address, build the same v4 UUID by hand.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return hex.replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
}

/* ---------- The purchase in progress, kept across reloads ---------- */

// The server keeps a checkout in its database so that it survives a crash;
// the page keeps the purchase in localStorage so that it survives a reload or
// a closed tab. One value, under one name:
//   {key, product_id, quantity}   from Buy on, stored *before* the checkout is
//                                 sent: the key is what makes sending it again safe
//   ... + payment_id              once the checkout has answered
//   {order_id}                    once the purchase is over: the order to track
const STORED = 'widgetstore.purchase';

function recall() {
  try { return JSON.parse(localStorage.getItem(STORED)); } catch { return null; }
}

function remember(value) {
  try {
    if (value) localStorage.setItem(STORED, JSON.stringify(value));
    else localStorage.removeItem(STORED);
  } catch { /* storage turned off: the page only forgets on reload */ }
}

// Ends the stored purchase `key`, leaving next ({order_id}) or nothing. A newer
// purchase, started meanwhile with another Buy, is left alone.
function endPurchase(key, next = null) {
  if (recall()?.key === key) remember(next);
}

const isOrderId = (id) => /^[1-9][0-9]{0,17}$/.test(String(id));
// No upper bound on the quantity here: the server has the limit, and answers
// a checkout sent again over it with a 400, which ends the purchase.
const isPurchase = (p) => typeof p.key === 'string' && p.key !== '' && Number.isInteger(p.product_id) &&
  Number.isInteger(p.quantity) && p.quantity >= 1 &&
  (p.payment_id === undefined || (typeof p.payment_id === 'string' && p.payment_id !== ''));

// On load: carry on with what the page was doing before it was closed.
async function restore() {
  const saved = recall();
  if (saved && isOrderId(saved.order_id)) return openOrder(saved.order_id, true);
  if (!saved || !isPurchase(saved)) return remember(null); // nothing, or not ours to read
  await refreshProducts(); // the payment section shows the product's name and price
  if (saved.payment_id) {
    showPayment(saved);
    return recheckPayment(saved);
  }
  // The page went away before the checkout answered: ask again with the same
  // key. The server answers the same payment id and never places a second order.
  say('Resuming your checkout…');
  return checkout(saved, (n) => say(`Reconnecting… retrying the same checkout (attempt ${n}).`, 'warn'));
}

/* ---------- Shop ---------- */

const productsById = new Map(); // product_id -> latest product JSON
const productCards = new Map(); // product_id -> card; kept so typed quantities survive refreshes
const priceCents = (p) => p.price_cents ?? Math.round((Number(p.price) || 0) * 100);
// The most one checkout may buy of p, as the server says with each product;
// unknown (a server without the field), the server alone decides.
const maxQuantityOf = (p) => (Number.isInteger(p?.max_quantity) && p.max_quantity >= 1 ? p.max_quantity : Infinity);

function renderProducts(products) {
  for (const p of products) {
    productsById.set(p.product_id, p);
    let card = productCards.get(p.product_id);
    if (!card) {
      card = clone('#product-template');
      card.dataset.productId = p.product_id;
      card.querySelector('.name').id = `product-${p.product_id}-name`;
      card.querySelector('.buy').setAttribute('aria-describedby', `product-${p.product_id}-name`);
      productCards.set(p.product_id, card);
      $('#products').append(card);
    }
    card.querySelector('.name').textContent = p.product;
    card.querySelector('.description').textContent = p.description || '';
    card.querySelector('.price').textContent = formatCents(priceCents(p));
    card.querySelector('.inventory').textContent = String(p.inventory);
    const max = maxQuantityOf(p);
    if (Number.isFinite(max)) card.querySelector('.quantity').max = String(max);
    else card.querySelector('.quantity').removeAttribute('max');
    // Buy stays enabled when sold out: the server decides, and says why.
    card.classList.toggle('sold-out', Number(p.inventory) <= 0);
  }
  $('#products-empty').textContent = 'No products for sale right now.';
  $('#products-empty').hidden = products.length > 0;
}

async function refreshProducts() {
  const { data } = await getJson('/api/products');
  if (Array.isArray(data)) renderProducts(data);
}

async function buy(card, button) {
  const productId = Number(card.dataset.productId);
  const product = productsById.get(productId);
  const input = card.querySelector('.quantity');
  const quantity = Number(input.value);
  if (!product) return;
  const max = maxQuantityOf(product);
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > max) {
    say(Number.isFinite(max) ? `Quantity must be a whole number from 1 to ${max}.` : 'Quantity must be a whole number, 1 or more.', 'error');
    input.focus();
    return;
  }
  // One key per purchase; every retry, and a reload, reuses it, so the server
  // sees one checkout. Stored first: the page may go away before the answer.
  const purchase = { key: newKey(), product_id: productId, quantity };
  remember(purchase);
  button.disabled = true;
  button.textContent = 'Buying…';
  say(`Checking out ${quantity} × ${product.product}…`);
  try {
    await checkout(purchase, (n) => {
      button.textContent = 'Reconnecting…';
      say(`Reconnecting… retrying the same checkout (attempt ${n}).`, 'warn');
    });
  } finally {
    button.disabled = false;
    button.textContent = 'Buy now';
  }
}

// Sends the purchase's checkout (again, when restoring: same key, same body)
// and shows its payment.
async function checkout(purchase, onRetry) {
  const { key, product_id, quantity } = purchase;
  const res = await sendWithRetry('POST', `/checkout/${encodeURIComponent(key)}`, { product_id, quantity }, onRetry);
  if (!res || !res.ok) {
    // A 4xx (out of stock, say) is the purchase's end. Anything else leaves
    // it stored: it may have gone through, and a reload asks again.
    if (res && res.status >= 400 && res.status < 500) endPurchase(key);
    return say(await errorText(res), 'error');
  }
  const paid = { ...purchase, payment_id: (await res.text()).trim() };
  if (recall()?.key === key) remember(paid);
  showPayment(paid);
  say('Checkout started. Confirm or refuse the payment below.');
  refreshProducts();
}

/* ---------- Payment ---------- */

let payment = null; // the purchase shown in the payment section, as stored

function showPayment(p) {
  const product = productsById.get(p.product_id);
  payment = p;
  $('#payment-id').textContent = p.payment_id;
  $('#payment-product').textContent = `${p.quantity} × ${product?.product ?? `product #${p.product_id}`}`;
  $('#payment-amount').textContent = product ? formatCents(priceCents(product) * p.quantity) : '—';
  setPaymentBusy(false);
  $('#payment').hidden = false;
  $('#payment').scrollIntoView({ block: 'nearest' });
  paymentDeadline = 0;
  $('#payment-deadline').textContent = '…';
  $('#pay').hidden = $('#refuse').hidden = false;
  readPaymentDeadline(p);
}

// The deadline the checkout recorded for the payment shown: the buttons go
// once it has passed, since the order can no longer be paid.
let paymentDeadline = 0;

async function readPaymentDeadline(p) {
  const { data } = await getJson(`/api/payments/${encodeURIComponent(p.payment_id)}`);
  if (payment !== p || !data) return;
  paymentDeadline = new Date(data.payment_deadline).getTime() || 0;
  tickPaymentDeadline();
}

function tickPaymentDeadline() {
  if (!payment || !paymentDeadline) return;
  const left = Math.ceil((paymentDeadline - Date.now()) / 1000);
  $('#payment-deadline').textContent = left > 0 ? `${formatTime(new Date(paymentDeadline).toISOString())} (${left} s left)` : 'passed: the order can no longer be paid';
  $('#pay').hidden = $('#refuse').hidden = left <= 0;
  if (left <= 0) {
    paymentDeadline = 0; // once: its order is shown from here on
    trackPayment(payment.payment_id, true);
  }
}

function closePayment() {
  payment = null;
  $('#payment').hidden = true;
}

const setPaymentBusy = (busy) => ['#pay', '#refuse', '#track'].forEach((id) => { $(id).disabled = busy; });

// outcome is "paid" or "failed", as in the webhook URL.
async function settlePayment(outcome) {
  const p = payment;
  if (!p) return;
  setPaymentBusy(true);
  say(outcome === 'paid' ? 'Confirming payment…' : 'Refusing payment…');
  const path = `/payment_webhook/${encodeURIComponent(p.payment_id)}/${outcome}`;
  const res = await sendWithRetry('POST', path, undefined,
    (n) => say(`Reconnecting… retrying the payment callback (attempt ${n}).`, 'warn'));
  setPaymentBusy(false);
  if (res && res.ok) {
    const orderId = (await res.text()).trim();
    say(outcome === 'paid' ? 'Payment confirmed.' : 'Payment refused.');
    endPurchase(p.key, { order_id: orderId });
    closePayment();
    openOrder(orderId);
    return;
  }
  say(await errorText(res), 'error');
  if (res?.status === 404) { // the server knows no such payment: a stale purchase
    endPurchase(p.key);
    closePayment();
  } else if (!isUnavailable(res)) {
    // E.g. the checkout already timed out: still show what became of the order.
    trackPayment(p.payment_id, true);
  }
}

// A restored payment may have been settled, or have timed out, while the page
// was away: then show its order instead (renderOrder ends the purchase).
async function recheckPayment(p) {
  const { data: order } = await getJson(`/api/payments/${encodeURIComponent(p.payment_id)}`);
  if (order && payment === p && statusOf(order) !== 'PENDING') openOrder(order.order_id);
}

// Checkout only returns a payment id: its order is found by it (the
// orders list shows no payment ids in production).
async function trackPayment(paymentId, quiet = false) {
  const { data: order } = await getJson(`/api/payments/${encodeURIComponent(paymentId)}`);
  if (order) openOrder(order.order_id);
  else if (!quiet) say('No order found for this payment yet; try again in a moment.', 'error');
}

/* ---------- Order status ---------- */

const LEGACY_STATUS = { 0: 'PENDING', 1: 'DISPATCHED', 2: 'PAID', '-1': 'CANCELLED' };
const PROGRESS_TEXT = { PENDING: 'Waiting for payment', DISPATCHED: 'Dispatched', CANCELLED: 'Cancelled' };
const statusOf = (o) => o.status || LEGACY_STATUS[o.order_status] || 'UNKNOWN';
const isFinal = (o) => ['DISPATCHED', 'CANCELLED'].includes(statusOf(o));

// The dispatch's step count is the order's own (the seed's was always 10).
const stepsOf = (o) => Number(o.dispatch_steps) || 10;

// Steps done: none until it is paid, none ever for a cancelled order.
function progressOf(o) {
  const status = statusOf(o);
  if (status === 'DISPATCHED') return stepsOf(o);
  if (status !== 'PAID') return 0;
  const done = stepsOf(o) - Number(o.progress_remaining ?? stepsOf(o));
  return Number.isFinite(done) ? Math.min(stepsOf(o), Math.max(0, done)) : 0;
}

const progressText = (o) => PROGRESS_TEXT[statusOf(o)] ?? `${progressOf(o)} / ${stepsOf(o)}`;

function formatTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

let currentOrderId = null;
let orderPollGen = 0; // bumping it stops the previous order's poll loop

function renderOrder(o) {
  const status = statusOf(o);
  $('#order-status').textContent = $('#order-status').dataset.status = status;
  $('#order-progress').max = stepsOf(o);
  $('#order-progress').value = progressOf(o);
  $('#order-progress-text').textContent = progressText(o);
  $('#order-product').textContent = o.product ?? '';
  $('#order-quantity').textContent = String(o.quantity ?? '');
  $('#order-total').textContent = formatCents(o.total_cents);
  $('#order-payment').textContent = o.payment_id || '—';
  $('#order-updated').textContent = formatTime(o.last_update_time);
  $('#order-cancel').hidden = status !== 'CANCELLED';
  $('#order-cancel-reason').textContent = o.cancel_reason || 'No reason given.';
  // Once the order has moved on, its payment can no longer be answered: the
  // purchase is over, and its order is the one to track.
  if (status !== 'PENDING' && o.payment_id) {
    if (payment?.payment_id === o.payment_id) closePayment();
    if (recall()?.payment_id === o.payment_id) remember({ order_id: String(o.order_id) });
  }
}

// Shows the order and polls it until it is final. quiet: it was restored from
// storage, so an order that no longer exists just goes away.
async function openOrder(orderId, quiet = false) {
  const gen = ++orderPollGen;
  currentOrderId = String(orderId);
  if (!recall()?.key) remember({ order_id: currentOrderId }); // unless a purchase is under way
  $('#order-id').textContent = currentOrderId;
  $('#order-status').textContent = '…';
  delete $('#order-status').dataset.status;
  $('#order').hidden = false;
  $('#order').scrollIntoView({ block: 'nearest' });
  markSelectedRow();

  while (gen === orderPollGen) {
    const { res, data } = await getJson(`/order/${encodeURIComponent(currentOrderId)}`);
    if (gen !== orderPollGen) return; // another order was opened meanwhile
    if (data) {
      renderOrder(data);
      if (isFinal(data)) return refreshProducts(); // a cancelled order may have returned stock
    } else if (res && res.status >= 400 && res.status < 500) {
      if (quiet) return closeOrder(); // e.g. gone with a reset database: forget it
      return say(await errorText(res), 'error');
    }
    await sleep(ORDER_POLL_MS); // server down: keep polling, it comes back by itself
  }
}

// The person is done with this order: stop tracking it, here and after a reload.
function closeOrder() {
  orderPollGen += 1;
  if (recall()?.order_id === currentOrderId) remember(null);
  currentOrderId = null;
  $('#order').hidden = true;
  markSelectedRow();
}

/* ---------- Orders list ---------- */

const orderRows = new Map(); // order_id -> <tr>

function fillOrderRow(row, o, id) {
  const status = row.querySelector('.status');
  const progress = row.querySelector('progress');
  row.dataset.orderId = id;
  row.querySelector('.id').textContent = `#${id}`;
  row.querySelector('.product-name').textContent = o.product ?? '';
  row.querySelector('.qty').textContent = String(o.quantity ?? '');
  status.textContent = status.dataset.status = statusOf(o);
  progress.setAttribute('aria-label', `Order ${id} dispatch progress`);
  progress.max = stepsOf(o);
  progress.value = progressOf(o);
  progress.title = progressText(o);
  row.querySelector('.updated').textContent = formatTime(o.last_update_time);
}

function renderOrders(orders) {
  syncRows($('#orders-body'), orderRows, orders, (o) => String(o.order_id), '#order-row-template', fillOrderRow);
  $('#orders-empty').hidden = orders.length > 0;
  markSelectedRow();
}

function markSelectedRow() {
  for (const [id, row] of orderRows) row.classList.toggle('selected', id === currentOrderId);
}

async function refreshOrders() {
  const { data } = await getJson('/orders');
  if (Array.isArray(data)) renderOrders(data);
}

/* ---------- Operator bar ---------- */

async function restock() {
  await command($('#restock'), '/restock', (data) => `Restocked (${data.restocked ?? 0}).`);
  await refreshProducts();
}

async function crash() {
  $('#crash').disabled = true;
  say('Crashing the server… it restarts by itself and this page carries on.', 'warn');
  await send('POST', '/crash_application');
  // Usually no answer arrives (the process is killed); either way it is going
  // down now, so show the banner. The next successful poll hides it.
  markDown();
  $('#crash').disabled = false;
}

/* ---------- Needs attention (operator) ---------- */

// Workflows that stopped before their end; the server can resume each from
// its last checkpoint.
const ATTENTION_PATH = '/api/workflows?status=ERROR,CANCELLED,MAX_RECOVERY_ATTEMPTS_EXCEEDED';
const workflowRows = new Map(); // workflow_id -> <tr>
let operatorGen = 0; // only the newest refresh renders: a slow poll cannot bring back a resumed row
let auditShown = null; // the breaches #audit shows, as JSON

function renderAudit(breaches) {
  const audit = $('#audit');
  const shown = JSON.stringify(breaches);
  if (shown === auditShown) return; // unchanged: the live region stays quiet
  auditShown = shown;
  audit.dataset.kind = breaches.length ? 'warn' : 'ok';
  if (breaches.length === 0) return audit.replaceChildren('Books balance');
  const list = document.createElement('ul');
  for (const breach of breaches) list.append(Object.assign(document.createElement('li'), { textContent: breach }));
  audit.replaceChildren(`The books do not balance (${breaches.length}):`, list);
}

function fillWorkflowRow(row, w, id) {
  const status = row.querySelector('.status');
  const error = row.querySelector('.error');
  row.dataset.workflowId = id;
  row.querySelector('.id').textContent = row.querySelector('.id').title = id;
  row.querySelector('.name').textContent = w.name ?? '';
  status.dataset.status = w.status ?? '';
  status.textContent = status.dataset.status.replaceAll('_', '_\u200b'); // MAX_RECOVERY_… may wrap
  row.querySelector('.attempts').textContent = String(w.attempts ?? '');
  error.textContent = w.error || '—';
  error.title = w.error || ''; // the cell is cut short (style.css)
  row.querySelector('.updated').textContent = formatTime(w.updated_at);
  row.querySelector('.resume').setAttribute('aria-label', `Resume workflow ${id}`);
  // DBOS cannot resume every workflow (not an ERROR one): no button that does nothing.
  row.querySelector('.resume').hidden = !w.resumable;
}

// One poll of the books and the workflow list. A 401 means the operator's
// session ended (signed out, expired, or the token changed): the page says
// so once and returns false, which ends the poll loop (sign in again on the
// console, then reload).
async function refreshOperator() {
  const gen = ++operatorGen;
  const [audit, workflows] = await Promise.all([getJson('/api/audit'), getJson(ATTENTION_PATH)]);
  if (audit.res?.status === 401 || workflows.res?.status === 401) {
    $('#audit').dataset.kind = 'warn';
    $('#audit').textContent = 'Operator session ended: sign in again on the console';
    $('#workflows-table').hidden = $('#workflows-empty').hidden = true;
    return false;
  }
  if (gen !== operatorGen) return true; // a newer refresh (after a Resume) renders instead
  if (Array.isArray(audit.data?.breaches)) renderAudit(audit.data.breaches);
  if (Array.isArray(workflows.data)) {
    syncRows($('#workflows-body'), workflowRows, workflows.data, (w) => String(w.workflow_id),
      '#workflow-row-template', fillWorkflowRow);
    $('#workflows-table').hidden = workflowRows.size === 0;
    $('#workflows-empty').hidden = workflowRows.size > 0;
  }
  return true; // server down or a passing error: keep what is shown, poll on
}

async function resume(button) {
  const id = button.closest('tr').dataset.workflowId;
  await command(button, `/api/workflows/${encodeURIComponent(id)}/resume`,
    (data) => `Workflow ${data.resumed ?? id} resumed from its last checkpoint.`);
  await refreshOperator();
}

// The operator's controls, and the list of everyone's orders, are shown
// only to the operator: anyone when the shop has no OPERATOR_TOKEN, else
// whoever signed in on the console. A customer follows their own orders
// (the cart's, found by checkout key or payment id).
async function showOperator() {
  const { data } = await getJson('/api/operator/session');
  const operator = data?.operator === true;
  $('#operator-controls').hidden = $('#operator').hidden = $('#orders').hidden = !operator;
  $('#operator-signin').hidden = operator;
  if (operator) every(OPERATOR_POLL_MS, refreshOperator);
}

/* ---------- Wiring ---------- */

document.addEventListener('DOMContentLoaded', () => {
  $('#products').addEventListener('click', (event) => {
    const button = event.target.closest('.buy');
    if (button) buy(button.closest('.product'), button);
  });
  $('#pay').addEventListener('click', () => settlePayment('paid'));
  $('#refuse').addEventListener('click', () => settlePayment('failed'));
  $('#track').addEventListener('click', () => payment && trackPayment(payment.payment_id));
  $('#order-close').addEventListener('click', closeOrder);
  $('#restock').addEventListener('click', restock);
  $('#crash').addEventListener('click', crash);

  // Rows behave like links: click, Enter or Space opens the order.
  const openRow = (event) => {
    const row = event.target.closest('tr[data-order-id]');
    if (row) openOrder(row.dataset.orderId);
  };
  $('#orders-body').addEventListener('click', openRow);
  $('#orders-body').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); openRow(event); }
  });
  $('#workflows-body').addEventListener('click', (event) => {
    const button = event.target.closest('button.resume');
    if (button) resume(button);
  });

  setInterval(tickPaymentDeadline, 250);
  every(PRODUCTS_POLL_MS, refreshProducts);
  every(ORDERS_POLL_MS, refreshOrders); // doubles as the heartbeat that clears the banner
  showOperator();
  restore();
});
