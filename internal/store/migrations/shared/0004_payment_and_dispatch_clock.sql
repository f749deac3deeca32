-- The payment webhook settles an order itself, in the transaction that
-- wakes its checkout, and checks the order's own deadline; a dispatch's
-- progress is counted from the moment the order was paid rather than
-- written at every step (see docs/performance.md).
ALTER TABLE orders ADD COLUMN payment_deadline_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN paid_at_ms BIGINT;
ALTER TABLE orders ADD COLUMN dispatch_interval_ms BIGINT NOT NULL DEFAULT 1000;
ALTER TABLE orders ADD COLUMN dispatched_at_ms BIGINT;

-- Orders from before: their deadline was the default 60 s, their steps a
-- second apart; the paid time is read back from the progress they had.
UPDATE orders SET payment_deadline_ms = created_at_ms + 60000;
UPDATE orders SET paid_at_ms = updated_at_ms - (dispatch_steps - progress_remaining) * 1000
WHERE status IN ('PAID', 'DISPATCHED');
UPDATE orders SET dispatched_at_ms = updated_at_ms WHERE status = 'DISPATCHED';

ALTER TABLE orders DROP COLUMN progress_remaining;
