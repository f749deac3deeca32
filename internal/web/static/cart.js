// The cart: products added on the page, checked out at once through the
// cart API (POST /api/checkouts/{key}), paid on the payment provider's page
// (the order's pay_url), and followed until the order is dispatched, or
// cancelled and any late payment refunded. Uses app.js's helpers ($, send,
// sendWithRetry, getJson, errorText, say, newKey, formatCents, productsById).
'use strict';

// What the page keeps in localStorage, so that a reload carries on:
const CART = 'widgetstore.cart'; //                [{product_id, quantity}]: the cart being filled
const CART_CHECKOUT = 'widgetstore.cartCheckout'; // {key, lines, email}: stored *before* the checkout is sent,
//                                                  since the key is what makes sending it again safe
const CART_ORDER = 'widgetstore.cartOrder'; //       the checkout key of the order followed
const CART_POLL_MS = 1000;

function loadStored(name) {
  try { return JSON.parse(localStorage.getItem(name)); } catch { return null; }
}

function store(name, value) {
  try {
    if (value == null) localStorage.removeItem(name);
    else localStorage.setItem(name, JSON.stringify(value));
  } catch { /* storage turned off: the page forgets on reload */ }
}

const isLine = (l) => l && Number.isInteger(l.product_id) && l.product_id > 0 && Number.isInteger(l.quantity) && l.quantity >= 1;
let cart = (Array.isArray(loadStored(CART)) ? loadStored(CART) : []).filter(isLine);
const maxOf = (productId) => maxQuantityOf(productsById.get(productId));

function saveCart() {
  store(CART, cart);
  renderCart();
}

function addToCart(productId, quantity) {
  const line = cart.find((l) => l.product_id === productId);
  if (line) line.quantity = Math.min(line.quantity + quantity, maxOf(productId));
  else cart.push({ product_id: productId, quantity: Math.min(quantity, maxOf(productId)) });
  saveCart();
  const name = productsById.get(productId)?.product ?? `product #${productId}`;
  say(`Added ${quantity} × ${name} to your cart.`);
}

function renderCart() {
  const body = $('#cart-body');
  body.replaceChildren();
  let total = 0;
  for (const line of cart) {
    const p = productsById.get(line.product_id);
    const price = p ? priceCents(p) : 0;
    total += price * line.quantity;
    const row = document.createElement('tr');
    row.dataset.productId = line.product_id;
    const name = Object.assign(document.createElement('td'), { textContent: p?.product ?? `product #${line.product_id}` });
    const unit = Object.assign(document.createElement('td'), { textContent: p ? formatCents(price) : '—' });
    const qty = document.createElement('td');
    const input = Object.assign(document.createElement('input'), { type: 'number', min: '1', step: '1', value: String(line.quantity), className: 'cart-quantity' });
    if (Number.isFinite(maxOf(line.product_id))) input.max = String(maxOf(line.product_id));
    input.setAttribute('aria-label', `Quantity of ${name.textContent}`);
    qty.append(input);
    const subtotal = Object.assign(document.createElement('td'), { textContent: p ? formatCents(price * line.quantity) : '—' });
    const remove = Object.assign(document.createElement('button'), { type: 'button', className: 'cart-remove quiet', textContent: 'Remove' });
    remove.setAttribute('aria-label', `Remove ${name.textContent}`);
    const cell = document.createElement('td');
    cell.append(remove);
    row.append(name, unit, qty, subtotal, cell);
    body.append(row);
  }
  $('#cart-total').textContent = formatCents(total);
  $('#cart-empty').hidden = cart.length > 0;
  $('#cart-table').hidden = $('#cart-form').hidden = cart.length === 0;
}

function changeLine(input) {
  const productId = Number(input.closest('tr').dataset.productId);
  const quantity = Number(input.value);
  const line = cart.find((l) => l.product_id === productId);
  if (!line) return;
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > maxOf(productId)) {
    say(`Quantity must be a whole number from 1 to ${maxOf(productId)}.`, 'error');
    input.value = String(line.quantity);
    return;
  }
  line.quantity = quantity;
  saveCart();
}

function removeLine(button) {
  const productId = Number(button.closest('tr').dataset.productId);
  cart = cart.filter((l) => l.product_id !== productId);
  saveCart();
}

async function checkoutCart(event) {
  event.preventDefault();
  if (cart.length === 0) return;
  const email = $('#cart-email').value.trim();
  const pending = { key: newKey(), lines: cart.map(({ product_id, quantity }) => ({ product_id, quantity })), email };
  store(CART_CHECKOUT, pending);
  $('#cart-checkout').disabled = true;
  try {
    await placeCart(pending);
  } finally {
    $('#cart-checkout').disabled = false;
  }
}

// Sends the cart's checkout (again, after a reload: the same key and body)
// and follows its order.
async function placeCart(pending) {
  say('Checking out your cart…');
  const body = { lines: pending.lines };
  if (pending.email) body.email = pending.email;
  const res = await sendWithRetry('POST', `/api/checkouts/${encodeURIComponent(pending.key)}`, body,
    (n) => say(`Reconnecting… retrying the same checkout (attempt ${n}).`, 'warn'));
  if (!res || !res.ok) {
    // A 4xx ends the checkout, and so does a 503 that says its key is
    // spent; anything else leaves it stored, to be sent again: it may have
    // gone through.
    const spent = await keySpent(res);
    if (res && ((res.status >= 400 && res.status < 500) || spent)) store(CART_CHECKOUT, null);
    const answer = res ? await res.clone().json().catch(() => null) : null;
    const short = Array.isArray(answer?.unavailable)
      ? ` Unavailable: ${answer.unavailable.map((u) => `${u.product} (${u.available} left)`).join(', ')}.` : '';
    say((res && !spent ? await errorText(res) : answer?.error ?? 'The server is unreachable.') + short, 'error');
    if (short) offerCart(availableLines(pending.lines, answer.unavailable), pending.email, 'Buy what is available instead');
    else if (spent) offerCart(pending.lines, pending.email, 'Try again');
    return;
  }
  const order = await res.json();
  $('#cart-offer').hidden = true;
  store(CART_CHECKOUT, null);
  cart = [];
  saveCart();
  say('Checkout started: pay your order on the provider\'s page before its deadline.');
  followCartOrder(order.checkout_key, order);
  refreshProducts();
}

// What of lines the stock can cover, by a short cart's 409: a short line
// at what is left of it, a sold-out one dropped, the others as they were.
function availableLines(lines, unavailable) {
  const left = new Map(unavailable.map((u) => [u.product_id, u.available]));
  return lines
    .map((l) => (left.has(l.product_id) ? { ...l, quantity: Math.min(l.quantity, left.get(l.product_id)) } : l))
    .filter((l) => l.quantity >= 1);
}

let offered = null; // {lines, email}: what the offer's button checks out

// Offers, in one click, to check out lines under a new key: what is
// available of a short cart, or the same cart again after its key was
// spent. The offer says what it buys, and for how much.
function offerCart(lines, email, label) {
  if (lines.length === 0) return;
  offered = { lines, email };
  const total = lines.reduce((sum, l) => sum + (productsById.get(l.product_id) ? priceCents(productsById.get(l.product_id)) : 0) * l.quantity, 0);
  $('#cart-offer-text').textContent = `${lines.map((l) => `${l.quantity} × ${productsById.get(l.product_id)?.product ?? `product #${l.product_id}`}`).join(', ')}: ${formatCents(total)}.`;
  $('#cart-offer-buy').textContent = label;
  $('#cart-offer').hidden = false;
}

async function takeOffer() {
  if (!offered) return;
  const pending = { key: newKey(), lines: offered.lines, email: offered.email };
  offered = null;
  $('#cart-offer').hidden = true;
  store(CART_CHECKOUT, pending);
  await placeCart(pending);
}

/* ---------- The order followed ---------- */

let followed = null; // the order shown, as last read
let followGen = 0; // bumping it stops the previous order's poll loop

const REFUND_NOTE = {
  due: ['Your payment came after the deadline, so the order was cancelled: the payment is being refunded.', 'warn'],
  refunded: ['Your payment came after the deadline, so the order was cancelled and your payment refunded in full.', 'ok'],
  attention: ['Your payment came after the deadline, and the refund needs the shop\'s staff: they have been told, and will refund it.', 'warn'],
};

// Until when the order can be paid; 0 when it cannot.
const payableUntil = (o) => (o?.status === 'PENDING' && o.pay_url ? new Date(o.payment_deadline).getTime() || 0 : 0);

function renderCartOrder(o) {
  followed = o;
  $('#cart-order-id').textContent = String(o.order_id);
  $('#cart-order-status').textContent = $('#cart-order-status').dataset.status = o.status;
  $('#cart-order-key').textContent = o.checkout_key;
  $('#cart-order-total').textContent = formatCents(o.total_cents);
  $('#cart-order-lines').replaceChildren(...(o.lines ?? []).map((l) => Object.assign(document.createElement('li'), {
    textContent: `${l.quantity} × ${l.product} at ${formatCents(l.unit_price_cents)}`,
  })));
  let [note, kind] = REFUND_NOTE[o.refund] ?? ['', ''];
  if (!note) {
    if (o.status === 'PAID') note = `Paid: being dispatched (${o.dispatch_steps - o.progress_remaining} / ${o.dispatch_steps}).`;
    else if (o.status === 'DISPATCHED') [note, kind] = ['Dispatched. Thank you!', 'ok'];
    else if (o.status === 'CANCELLED') [note, kind] = [`Cancelled: ${o.cancel_reason}.`, 'warn'];
  }
  $('#cart-order-note').textContent = note;
  $('#cart-order-note').dataset.kind = kind;
  if (o.pay_url) $('#cart-pay-link').href = o.pay_url;
  $('#cart-order-cancel').hidden = o.status !== 'PENDING';
  tickDeadline();
  $('#cart-order').hidden = false;
}

// The pay link shows only while the order can be paid, with the time left,
// counted down from the deadline the checkout recorded.
function tickDeadline() {
  const until = payableUntil(followed);
  const left = Math.ceil((until - Date.now()) / 1000);
  $('#cart-pay').hidden = left <= 0;
  $('#cart-deadline').textContent = left > 0 ? `Pay within ${left} s.` : '';
}

const isSettled = (o) => o.status === 'DISPATCHED' || (o.status === 'CANCELLED' && o.refund !== 'due');

async function followCartOrder(key, first) {
  const gen = ++followGen;
  store(CART_ORDER, key);
  if (first) renderCartOrder(first);
  $('#cart-order').scrollIntoView({ block: 'nearest' });
  while (gen === followGen) {
    const { res, data } = await getJson(`/api/checkouts/${encodeURIComponent(key)}`);
    if (gen !== followGen) return;
    if (data) {
      renderCartOrder(data);
      // A cancelled order may still get a late payment, refunded then: an
      // order followed is polled until it is dispatched, or for a while
      // after it was cancelled.
      if (data.status === 'DISPATCHED') return;
      if (isSettled(data) && Date.now() - new Date(data.last_update_time).getTime() > 120000) return;
    } else if (res && res.status >= 400 && res.status < 500) {
      store(CART_ORDER, null);
      return say(await errorText(res), 'error');
    }
    await sleep(CART_POLL_MS);
  }
}

// Cancels the order followed while it awaits payment: its stock goes back
// at once, and a payment that still comes is refunded.
async function cancelCartOrder() {
  if (!followed) return;
  const res = await send('POST', `/api/checkouts/${encodeURIComponent(followed.checkout_key)}/cancel`);
  if (!res || !res.ok) return say(res ? await errorText(res) : 'The server is unreachable.', 'error');
  renderCartOrder(await res.json());
  say('Your order is cancelled: its products are back on sale.');
  refreshProducts();
}

function closeCartOrder() {
  followGen += 1;
  followed = null;
  store(CART_ORDER, null);
  $('#cart-order').hidden = true;
}

async function findOrder(event) {
  event.preventDefault();
  const id = $('#find-id').value.trim();
  if (!id) return;
  const path = id.startsWith('pay_') ? `/api/payments/${encodeURIComponent(id)}` : `/api/checkouts/${encodeURIComponent(id)}`;
  const { res, data } = await getJson(path);
  if (!data) return say(res ? await errorText(res) : 'The server is unreachable.', 'error');
  say(`Found order #${data.order_id}.`);
  followCartOrder(data.checkout_key, data);
}

document.addEventListener('DOMContentLoaded', () => {
  $('#products').addEventListener('click', (event) => {
    const button = event.target.closest('.add');
    if (!button) return;
    const card = button.closest('.product');
    const quantity = Number(card.querySelector('.quantity').value);
    const productId = Number(card.dataset.productId);
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > maxOf(productId)) {
      return say(`Quantity must be a whole number from 1 to ${maxOf(productId)}.`, 'error');
    }
    addToCart(productId, quantity);
  });
  $('#cart-body').addEventListener('change', (event) => {
    if (event.target.matches('.cart-quantity')) changeLine(event.target);
  });
  $('#cart-body').addEventListener('click', (event) => {
    const button = event.target.closest('.cart-remove');
    if (button) removeLine(button);
  });
  $('#cart-form').addEventListener('submit', checkoutCart);
  $('#cart-order-close').addEventListener('click', closeCartOrder);
  $('#cart-order-cancel').addEventListener('click', cancelCartOrder);
  $('#cart-offer-buy').addEventListener('click', takeOffer);
  $('#find-form').addEventListener('submit', findOrder);
  setInterval(tickDeadline, 250);

  // Carry on: a receipt's link (?checkout=KEY), a checkout sent but not
  // answered, or the order followed.
  refreshProducts().then(renderCart);
  const linked = new URLSearchParams(location.search).get('checkout');
  const pending = loadStored(CART_CHECKOUT);
  if (linked) followCartOrder(linked);
  else if (pending?.key && Array.isArray(pending.lines) && pending.lines.every(isLine)) placeCart(pending);
  else if (typeof loadStored(CART_ORDER) === 'string') followCartOrder(loadStored(CART_ORDER));
});
