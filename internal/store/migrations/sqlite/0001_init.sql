-- Products and orders. Money is integer cents; times are Unix milliseconds,
-- so the same SQL text reads and writes both engines.
CREATE TABLE products (
    product_id  INTEGER PRIMARY KEY,
    product     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    inventory   INTEGER NOT NULL CHECK (inventory >= 0),
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE orders (
    order_id           INTEGER PRIMARY KEY AUTOINCREMENT,
    checkout_id        TEXT    NOT NULL UNIQUE,
    payment_id         TEXT    NOT NULL UNIQUE,
    product_id         INTEGER NOT NULL REFERENCES products (product_id),
    quantity           INTEGER NOT NULL CHECK (quantity > 0),
    total_cents        INTEGER NOT NULL,
    status             TEXT    NOT NULL,
    cancel_reason      TEXT    NOT NULL DEFAULT '',
    dispatch_steps     INTEGER NOT NULL CHECK (dispatch_steps > 0),
    progress_remaining INTEGER NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL
);

-- Every change of stock, with the order that made it: the audit trail that
-- shows no reservation or release was ever applied twice, and that
-- inventory = first stock + sum(delta).
CREATE TABLE inventory_ledger (
    entry_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id    INTEGER NOT NULL REFERENCES products (product_id),
    order_id      INTEGER REFERENCES orders (order_id),
    delta         INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE INDEX inventory_ledger_order ON inventory_ledger (order_id);
