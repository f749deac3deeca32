-- The receipts' outbox (internal/receipt). A row is written in the
-- transaction that moves its order to a stage, so a committed change always
-- has its receipt to send; (order_id, stage) is the key that makes it one
-- receipt per stage. content is the receipt as it was at that moment (JSON),
-- message_id its fixed Message-ID, so every attempt sends the same message.
-- A sender claims a row until claimed_until_ms (claim names the claimant)
-- so that two deliverers do not send it at once, and marks it sent_at_ms
-- after the SMTP server accepted it.
CREATE TABLE receipts (
    order_id         BIGINT  NOT NULL,
    stage            TEXT    NOT NULL CHECK (stage IN ('paid', 'dispatched', 'refunded')),
    recipient        TEXT    NOT NULL,
    message_id       TEXT    NOT NULL UNIQUE,
    content          TEXT    NOT NULL,
    enqueued_at_ms   BIGINT  NOT NULL,
    claim            TEXT    NOT NULL DEFAULT '',
    claimed_until_ms BIGINT  NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT '',
    sent_at_ms       BIGINT,
    PRIMARY KEY (order_id, stage)
);

-- The sweep (receipt.Pending) reads only the unsent receipts, oldest first.
CREATE INDEX receipts_unsent ON receipts (enqueued_at_ms) WHERE sent_at_ms IS NULL;
