-- Why a payment could not pay its order whatever the order's state: taken
-- in another currency, or for another amount than the order's total. Such
-- a payment is owed back and refunded like any other, and also listed for
-- the operator (store.PaymentsMismatched): a provider that takes the wrong
-- money is a bug, or someone's tampering, to look into. '' for none.
ALTER TABLE payments ADD COLUMN mismatch TEXT NOT NULL DEFAULT '';
