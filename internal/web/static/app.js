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
const RETRYABLE = new Set([502, 503, 504]); // what a proxy answers while the server is down

const $ = (selector) => document.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });
const formatCents = (cents) => money.format((Number(cents) || 0) / 100);

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

// Repeats the *same* request while the server is unreachable. Only used for
// idempotent endpoints (keyed checkout, payment webhook), so retrying after a
// crash can never buy or pay twice. Resolves to the last response (or null).
async function sendWithRetry(method, path, body, onRetry) {
  const deadline = Date.now() + RETRY_WINDOW_MS;
  for (let attempt = 1; ; attempt += 1) {
    const res = await send(method, path, body);
    if (!isUnavailable(res) || Date.now() + RETRY_DELAY_MS > deadline) return res;
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

// Runs fn forever, one call at a time, so slow answers never pile up.
async function every(ms, fn) {
  for (;;) {
    try { await fn(); } catch (err) { console.error(err); }
    await sleep(ms);
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

/* ---------- Shop ---------- */

const productsById = new Map(); // product_id -> latest product JSON
const productCards = new Map(); // product_id -> card; kept so typed quantities survive refreshes
const priceCents = (p) => p.price_cents ?? Math.round((Number(p.price) || 0) * 100);

function renderProducts(products) {
  for (const p of products) {
    productsById.set(p.product_id, p);
    let card = productCards.get(p.product_id);
    if (!card) {
      card = $('#product-template').content.firstElementChild.cloneNode(true);
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
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 10) {
    say('Quantity must be a whole number from 1 to 10.', 'error');
    input.focus();
    return;
  }
  // One key per purchase attempt; every retry reuses it, so the server sees one checkout.
  const key = newKey();
  button.disabled = true;
  button.textContent = 'Buying…';
  say(`Checking out ${quantity} × ${product.product}…`);
  try {
    const retrying = (n) => {
      button.textContent = 'Reconnecting…';
      say(`Reconnecting… retrying the same checkout (attempt ${n}).`, 'warn');
    };
    const res = await sendWithRetry('POST', `/checkout/${key}`, { product_id: productId, quantity }, retrying);
    if (!res || !res.ok) return say(await errorText(res), 'error');
    const paymentId = (await res.text()).trim();
    showPayment({ paymentId, product: product.product, quantity, amountCents: priceCents(product) * quantity });
    say('Checkout started. Confirm or refuse the payment below.');
    refreshProducts();
  } finally {
    button.disabled = false;
    button.textContent = 'Buy now';
  }
}

/* ---------- Payment ---------- */

let payment = null; // the checkout shown in the payment section

function showPayment(p) {
  payment = p;
  $('#payment-id').textContent = p.paymentId;
  $('#payment-product').textContent = `${p.quantity} × ${p.product}`;
  $('#payment-amount').textContent = formatCents(p.amountCents);
  setPaymentBusy(false);
  $('#payment').hidden = false;
  $('#payment').scrollIntoView({ block: 'nearest' });
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
  const path = `/payment_webhook/${encodeURIComponent(p.paymentId)}/${outcome}`;
  const res = await sendWithRetry('POST', path, undefined,
    (n) => say(`Reconnecting… retrying the payment callback (attempt ${n}).`, 'warn'));
  setPaymentBusy(false);
  if (res && res.ok) {
    const orderId = (await res.text()).trim();
    say(outcome === 'paid' ? 'Payment confirmed.' : 'Payment refused.');
    closePayment();
    openOrder(orderId);
    return;
  }
  say(await errorText(res), 'error');
  // E.g. the checkout already timed out: still show what became of the order.
  if (!isUnavailable(res)) trackPayment(p.paymentId, true);
}

// Checkout only returns a payment id, so find its order through the list.
async function trackPayment(paymentId, quiet = false) {
  const { data } = await getJson('/orders');
  const order = Array.isArray(data) && data.find((o) => o.payment_id === paymentId);
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
  $('#order-status').textContent = status;
  $('#order-status').dataset.status = status;
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
  // Once the order has moved on, its payment can no longer be answered.
  if (payment && payment.paymentId === o.payment_id && status !== 'PENDING') closePayment();
}

async function openOrder(orderId) {
  const gen = ++orderPollGen;
  currentOrderId = String(orderId);
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
      return say(await errorText(res), 'error');
    }
    await sleep(ORDER_POLL_MS); // server down: keep polling, it comes back by itself
  }
}

/* ---------- Orders list ---------- */

const orderRows = new Map(); // order_id -> <tr>, updated in place so keyboard focus survives

function fillOrderRow(row, o) {
  const status = row.querySelector('.status');
  row.querySelector('.id').textContent = `#${o.order_id}`;
  row.querySelector('.product-name').textContent = o.product ?? '';
  row.querySelector('.qty').textContent = String(o.quantity ?? '');
  status.textContent = statusOf(o);
  status.dataset.status = statusOf(o);
  row.querySelector('progress').max = stepsOf(o);
  row.querySelector('progress').value = progressOf(o);
  row.querySelector('progress').title = progressText(o);
  row.querySelector('.updated').textContent = formatTime(o.last_update_time);
}

function renderOrders(orders) {
  const body = $('#orders-body');
  const ids = new Set(orders.map((o) => String(o.order_id)));
  for (const [id, row] of orderRows) {
    if (!ids.has(id)) { row.remove(); orderRows.delete(id); }
  }
  orders.forEach((o, i) => {
    const id = String(o.order_id);
    let row = orderRows.get(id);
    if (!row) {
      row = $('#order-row-template').content.firstElementChild.cloneNode(true);
      row.dataset.orderId = id;
      row.querySelector('progress').setAttribute('aria-label', `Order ${id} dispatch progress`);
      orderRows.set(id, row);
    }
    fillOrderRow(row, o);
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null); // keep server order
  });
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
  $('#restock').disabled = true;
  const res = await send('POST', '/restock');
  if (res && res.ok) {
    const data = await res.json().catch(() => ({}));
    say(`Restocked (${data.restocked ?? 0}).`);
    await refreshProducts();
  } else {
    say(res ? await errorText(res) : 'The server is unreachable.', 'error');
  }
  $('#restock').disabled = false;
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

/* ---------- Wiring ---------- */

document.addEventListener('DOMContentLoaded', () => {
  $('#products').addEventListener('click', (event) => {
    const button = event.target.closest('.buy');
    if (button) buy(button.closest('.product'), button);
  });
  $('#pay').addEventListener('click', () => settlePayment('paid'));
  $('#refuse').addEventListener('click', () => settlePayment('failed'));
  $('#track').addEventListener('click', () => payment && trackPayment(payment.paymentId));
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

  every(PRODUCTS_POLL_MS, refreshProducts);
  every(ORDERS_POLL_MS, refreshOrders); // doubles as the heartbeat that clears the banner
});
