-- A purchase's reservation of stock takes the product's row lock at its
-- commit, not in the middle of its transaction. Every purchase of a
-- product updates the product's one row, and PostgreSQL holds a row lock
-- until the commit: taken by placeOrder's UPDATE, it was held through the
-- rest of the DBOS step (the savepoint's release, the owner check, the
-- checkpoint's INSERT, the COMMIT: four round trips to a busy shop), and
-- every other purchase of that product queued behind it (106.8 ms of
-- waiting a call at C = 32, by pg_stat_statements: 260 s of the 282 s the
-- backends spent in statements during a 20 s loadgen run).
--
-- A ledger row written with moves_stock applies its delta here, at the
-- commit, under the lock for only the commit's own work. The statement
-- that wrote it checked the stock in its snapshot (store.reserveStock);
-- when a purchase committed since took what it saw, the guard below finds
-- too little and fails the transaction as a serialization failure, which
-- DBOS retries as a new transaction: that one sees the stock as it is now
-- and cancels the order out of stock. Rows written without moves_stock
-- (restocks, releases, and every row of the builds before this one, which
-- update the stock themselves) are left alone.
ALTER TABLE inventory_ledger ADD COLUMN moves_stock BOOLEAN NOT NULL DEFAULT FALSE;

CREATE FUNCTION inventory_ledger_move_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE products SET inventory = inventory + NEW.delta
        WHERE product_id = NEW.product_id AND inventory + NEW.delta >= 0;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'product % has too little stock left for ledger entry % (%)', NEW.product_id, NEW.entry_id, NEW.delta
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER inventory_ledger_moves_stock AFTER INSERT ON inventory_ledger
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.moves_stock)
    EXECUTE FUNCTION inventory_ledger_move_stock();
