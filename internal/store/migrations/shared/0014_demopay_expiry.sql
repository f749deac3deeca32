-- When the shop expired a demo intent that was not paid (its checkout
-- stopped waiting: demopay.Provider.ExpireIntent); such an intent can no
-- longer be paid or refused. NULL while it can.
ALTER TABLE demopay_intents ADD COLUMN expired_at_ms BIGINT;
