// The durability story beside the order: the checkout's checkpoints as the
// server records them, pushed by server-sent events (polled where the
// browser has no EventSource), with the moments the server went away and
// came back. It reads the purchase's key from what app.js and cart.js keep
// in localStorage, and touches nothing of theirs.
'use strict';

(() => {
  // Where app.js and cart.js keep the checkout under way (each: its key,
  // or an object with .key): the newest key seen in any is the one shown.
  const SOURCES = ['widgetstore.purchase', 'widgetstore.cartCheckout', 'widgetstore.cartOrder'];
  const OWN = 'widgetstore.durability'; // the key of the checkout shown here, kept after the purchase ends
  const POLL_MS = 1000;
  const ENDED = new Set(['SUCCESS', 'ERROR', 'CANCELLED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED']);
  // A checkout of widgetstore-5 succeeds when its order is paid; the order
  // is dispatched after it, by the shop's dispatch sweep, without a
  // checkpoint of the checkout's: the story goes on until the order ends.
  const ORDER_ENDED = new Set(['DISPATCHED', 'CANCELLED']);
  const over = (p) => ENDED.has(p.status) && (p.status !== 'SUCCESS' || !p.order || ORDER_ENDED.has(p.order.status));
  // What each recorded step means to a shopper. Unknown names show as they are.
  const LABELS = {
    'checkout.screenOrder': 'Checked for a card tester\'s trail',
    'checkout.placeOrder': 'Order placed and stock reserved',
    'DBOS.setEvent': 'Payment id handed to your browser',
    'DBOS.recv': 'Payment received',
    'checkout.settlement': 'Payment settled: paid, refused, or its time ran out',
    'DBOS.sleep': 'Durable timer set (it survives a restart)',
    'checkout.cancelUnpaid': 'Unpaid order cancelled, stock released',
    'checkout.markDispatched': 'Order dispatched',
    'order.paid': 'Payment received: the webhook wrote it on the order, and the checkout ended there',
  };
  // The steps that record a payment received; a checkout of widgetstore-5
  // records none (its order's row says it), and the page shows the row's.
  const PAYMENT_STEPS = new Set(['DBOS.recv', 'checkout.settlement']);

  // DBOS marks a patched workflow with a step of its own, "DBOS.patch-<name>".
  const label = (name) => LABELS[name] ?? (name.startsWith('DBOS.patch-')
    ? 'Which version of the code runs it, noted, so a restart replays the same' : name);

  const $ = (selector) => document.querySelector(selector);
  const clock = (iso) => new Date(iso).toLocaleTimeString();

  let key = null;
  let source = null;
  let timer = null;
  let shown = null; // the last progress rendered
  let events = []; // {at, text, kind}: the server going away and coming back, as this page saw it
  let down = false;

  const seen = {}; // source -> the key last read there

  function keyIn(source) {
    try {
      const value = JSON.parse(localStorage.getItem(source));
      if (typeof value === 'string') return value;
      if (value && typeof value.key === 'string') return value.key;
    } catch { /* not JSON */ }
    return null;
  }

  // A key that appeared in one of the sources since the last look, or null.
  function newKey() {
    let found = null;
    for (const source of SOURCES) {
      const k = keyIn(source);
      if (k && k !== seen[source]) found = k;
      seen[source] = k;
    }
    return found;
  }

  function stop() {
    if (source) source.close();
    source = null;
    clearTimeout(timer);
  }

  function serverDown() {
    if (down) return;
    down = true;
    events.push({ at: new Date().toISOString(), text: 'The server stopped answering', kind: 'down' });
    if (shown) render(shown);
  }

  function serverUp() {
    if (!down) return;
    down = false;
    events.push({ at: new Date().toISOString(), text: 'The server is answering again', kind: 'up' });
    if (shown) render(shown);
  }

  // A stream that breaks is either the server going away or the stream's
  // planned end: /livez tells which.
  async function streamBroke() {
    const alive = await fetch('/livez', { cache: 'no-store' }).then((res) => res.ok, () => false);
    if (!alive) serverDown();
    // EventSource reconnects by itself, but not after an answer that is
    // not a stream (a proxy's 502): then this page opens it again.
    if (source && source.readyState === EventSource.CLOSED) {
      const watched = key;
      source = null;
      timer = setTimeout(() => { if (key === watched) open(watched); }, POLL_MS);
    }
  }

  function open(k) {
    if (typeof EventSource !== 'function') return poll(k);
    source = new EventSource(`/api/checkouts/${encodeURIComponent(k)}/events`);
    source.addEventListener('open', serverUp);
    source.addEventListener('update', (event) => {
      serverUp();
      const progress = JSON.parse(event.data);
      render(progress);
      if (over(progress)) stop(); // nothing more will be recorded
    });
    source.addEventListener('error', streamBroke);
  }

  async function poll(k) {
    if (k !== key) return;
    try {
      const res = await fetch(`/api/checkouts/${encodeURIComponent(k)}/progress`, { cache: 'no-store' });
      serverUp();
      if (res.status === 404) return; // not a checkout this server knows
      if (res.ok) {
        const progress = await res.json();
        render(progress);
        if (over(progress)) return;
      }
    } catch {
      serverDown();
    }
    timer = setTimeout(() => poll(k), POLL_MS);
  }

  function watch(k) {
    if (!k || k === key) return;
    stop();
    key = k;
    shown = null;
    events = [];
    localStorage.setItem(OWN, k);
    open(k);
  }

  function item(text, at, kind, step) {
    const li = document.createElement('li');
    li.className = kind;
    if (step) { li.dataset.step = String(step.step); li.dataset.name = step.name; }
    const when = document.createElement('time');
    when.dateTime = at;
    when.textContent = clock(at);
    li.append(when, ' ', text);
    return li;
  }

  function render(progress) {
    shown = progress;
    $('#durability').hidden = false;
    const entries = progress.checkpoints.map((c) => ({
      at: c.completed_at || c.started_at,
      el: item(`${label(c.name)}${c.failed ? ' — failed' : ''}`, c.completed_at || c.started_at,
        c.failed ? 'checkpoint failed' : 'checkpoint', c),
    }));
    const paidAt = progress.order?.paid_at;
    if (paidAt && !progress.checkpoints.some((c) => PAYMENT_STEPS.has(c.name))) {
      const li = item(LABELS['order.paid'], paidAt, 'checkpoint');
      li.dataset.name = 'order.paid';
      entries.push({ at: paidAt, el: li });
    }
    const dispatched = progress.order?.status === 'DISPATCHED';
    if (dispatched && !progress.checkpoints.some((c) => c.name === 'checkout.markDispatched')) {
      const li = item(LABELS['checkout.markDispatched'], progress.order.last_update_time, 'checkpoint');
      li.dataset.name = 'order.dispatched';
      entries.push({ at: progress.order.last_update_time, el: li });
    }
    if (Date.parse(progress.server_started_at) > Date.parse(progress.created_at)) {
      entries.push({ at: progress.server_started_at,
        el: item('The server started again; it read the checkpoints above and carried on from the last', progress.server_started_at, 'restart') });
    }
    for (const e of events) entries.push({ at: e.at, el: item(e.text, e.at, e.kind) });
    entries.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    $('#checkpoints').replaceChildren(...entries.map((e) => e.el));
    $('#durability-recovered').hidden = progress.attempts <= 1;
    $('#durability-recovered').textContent = progress.attempts > 1
      ? `Recovered: this checkout was run ${progress.attempts} times, once per server that picked it up. Each run started from the last checkpoint, so no step above was done twice.`
      : '';
    const crash = $('#crash');
    $('#durability-invite').hidden = !(crash && crash.getClientRects().length > 0 && !over(progress));
  }

  // The payment id the page shows (the purchase's, or the order's): a
  // purchase can be over before a look at localStorage sees its key, so
  // the checkout is also found from it (GET /api/payments/{id} answers the
  // checkout's key).
  let seenPayment = null;

  async function followShownPayment() {
    const shownId = ($('#order-payment')?.textContent || $('#payment-id')?.textContent || '').trim();
    if (!shownId || shownId === seenPayment || shownId === shown?.order?.payment_id) return;
    seenPayment = shownId;
    try {
      const res = await fetch(`/api/payments/${encodeURIComponent(shownId)}`, { cache: 'no-store' });
      const found = res.ok ? await res.json() : null;
      if (found && typeof found.checkout_key === 'string' && seenPayment === shownId) watch(found.checkout_key);
    } catch { /* the server is away: the next look tries again */
      seenPayment = null;
    }
  }

  function look() {
    watch(newKey());
    followShownPayment();
  }

  document.addEventListener('DOMContentLoaded', () => {
    watch(newKey() ?? localStorage.getItem(OWN));
    // The pages write a new purchase's key before they send its checkout.
    window.addEventListener('storage', look); // other tabs
    setInterval(look, 300); // this tab
  });
})();
