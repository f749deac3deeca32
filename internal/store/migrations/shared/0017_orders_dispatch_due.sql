-- The dispatch sweep (store.DispatchDue) moves the paid orders of the
-- checkouts of widgetstore-5 and later (checkout_version >= 5) to
-- DISPATCHED once their last progress step is due, every second or so on
-- every instance: this index serves it with a short range scan of the
-- orders due, whatever the number of orders. It holds only the orders in
-- dispatch, PAID, and an order enters it when paid and leaves it when
-- dispatched, each an update that orders_pending_client already keeps
-- from being HOT (it names status); the columns of its key are written
-- once, when the order is placed or paid. The query names 'PAID' and 5
-- literally, as the index does, so that PostgreSQL's generic plan of the
-- prepared statement can use it.
CREATE INDEX orders_dispatch_due ON orders ((paid_at_ms + dispatch_steps * dispatch_interval_ms))
    WHERE status = 'PAID' AND checkout_version >= 5;
