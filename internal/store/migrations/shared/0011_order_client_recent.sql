-- The checkout's screening (checkout.screenOrder) reads a client's latest
-- orders, newest first (store.RefusalStreak): this index serves it with a
-- short backward scan, whatever the number of orders. Both columns are
-- written once, when the order is placed.
CREATE INDEX orders_client_created ON orders (client, created_at_ms);
