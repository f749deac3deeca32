-- The PostgreSQL migration of the same number says why a ledger row
-- written with moves_stock applies its own delta. SQLite has one writer at
-- a time, so the stock that store.reserveStock checked is the stock at
-- the commit, no lock is waited for, and the trigger applies the delta at
-- once (SQLite has no deferred triggers); the products' CHECK keeps the
-- stock from going below zero all the same.
ALTER TABLE inventory_ledger ADD COLUMN moves_stock BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TRIGGER inventory_ledger_moves_stock AFTER INSERT ON inventory_ledger
    FOR EACH ROW WHEN NEW.moves_stock
BEGIN
    UPDATE products SET inventory = inventory + NEW.delta WHERE product_id = NEW.product_id;
END;
