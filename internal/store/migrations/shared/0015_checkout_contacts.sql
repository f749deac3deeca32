-- Whom a checkout is for: the customer's email and the client's address,
-- written by the request that starts the checkout and taken (deleted) by
-- its placeOrder step into the order's row, so that neither is written in
-- DBOS's records of the workflow (its input, its steps' outputs), which
-- are kept for the retention's 30 days. A row no checkout took (the key
-- was used already) is pruned by the retention.
CREATE TABLE checkout_contacts (
    checkout_id   TEXT   PRIMARY KEY,
    email         TEXT   NOT NULL,
    client        TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);
