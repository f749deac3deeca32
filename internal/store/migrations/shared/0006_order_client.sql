-- Who asked for each order: an address (web's clientOf), or '' for the
-- shop's own callers. A checkout counts, in the transaction that places its
-- order, the units its client holds in orders awaiting payment, and places
-- nothing past checkout.Config.PendingUnitsPerClient (store.PlaceOrder).
ALTER TABLE orders ADD COLUMN client TEXT NOT NULL DEFAULT '';

-- The count reads only the client's pending orders (client = $1 AND status
-- = 'PENDING'), so only those are indexed: the index is as small as the
-- orders awaiting payment, and a settled order leaves it.
CREATE INDEX orders_pending_client ON orders (client) WHERE status = 'PENDING';

-- One row per client whose checkouts were counted. A checkout locks its
-- client's row before counting, so that two checkouts of one client take
-- turns: on PostgreSQL, at READ COMMITTED, two counting at once would each
-- miss the order the other is placing.
CREATE TABLE client_locks (
    client TEXT PRIMARY KEY
);
