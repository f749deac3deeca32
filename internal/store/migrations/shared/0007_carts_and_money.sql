-- Carts: an order buys one or more lines, each a product, a quantity and
-- the unit price it was sold at. orders.product_id stays the first line's
-- product and orders.quantity the order's units in all (the seed's API
-- shows both; the per-client limit counts units). Orders from before hold
-- one line each.
CREATE TABLE order_lines (
    order_id         BIGINT  NOT NULL REFERENCES orders (order_id),
    line_no          INTEGER NOT NULL,
    product_id       BIGINT  NOT NULL REFERENCES products (product_id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents)
SELECT order_id, 1, product_id, quantity, total_cents / quantity FROM orders;

-- Where the customer's receipts go; '' for none.
ALTER TABLE orders ADD COLUMN email TEXT NOT NULL DEFAULT '';

-- Money taken: one row per payment a provider reported taken, whatever
-- became of its order. A payment that made its order PAID is kept
-- (refund_state ''); any other (its checkout had given up, or the order
-- was paid already) is owed back: 'due' until a refund workflow refunds it
-- ('refunded') or gives up and asks the operator ('attention'). So the sum
-- of payments equals the paid orders' totals plus the refunds, which
-- store.Audit checks.
CREATE TABLE payments (
    payment_ref    TEXT    PRIMARY KEY, -- the provider's id: an intent, or the shop's payment id on the seed's webhook
    order_id       BIGINT  NOT NULL REFERENCES orders (order_id),
    provider       TEXT    NOT NULL,
    amount_cents   BIGINT  NOT NULL,
    taken_at_ms    BIGINT  NOT NULL,
    refund_state   TEXT    NOT NULL DEFAULT '',
    refund_id      TEXT    NOT NULL DEFAULT '',
    refund_note    TEXT    NOT NULL DEFAULT '',
    refunded_at_ms BIGINT
);
CREATE INDEX payments_order ON payments (order_id);
CREATE INDEX payments_refund_due ON payments (taken_at_ms) WHERE refund_state = 'due';

-- The ids of the provider's webhook events applied, so that a redelivered
-- or replayed event is acknowledged without effect.
CREATE TABLE payment_events (
    event_id       TEXT   PRIMARY KEY,
    received_at_ms BIGINT NOT NULL
);

-- Orders paid before: their payments, reported on the seed's webhook, kept.
INSERT INTO payments (payment_ref, order_id, provider, amount_cents, taken_at_ms)
SELECT payment_id, order_id, 'seed', total_cents, paid_at_ms FROM orders WHERE status IN ('PAID', 'DISPATCHED');
