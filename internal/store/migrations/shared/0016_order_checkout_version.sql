-- The step sequence of the checkout that placed the order: its input's
-- version (internal/checkout/record.go), written by placeOrder. 0 for an
-- order placed by a build before widgetstore-5, whose checkout waits for
-- the payment webhook's word with dbos.Recv and dispatches its order
-- itself: what the shop does for an order must follow the checkout that
-- placed it, during a rolling upgrade as after one.
ALTER TABLE orders ADD COLUMN checkout_version INTEGER NOT NULL DEFAULT 0;
