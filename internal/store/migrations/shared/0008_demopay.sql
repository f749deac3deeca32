-- The demo payment provider's own tables (package demopay). They live in the
-- shop's database only because the demo runs in the shop's process; the shop
-- never reads them: it knows the provider only through payment.Provider and
-- the events the provider signs.

-- A payment intent: what a checkout asks the customer to pay. Created once
-- per idempotency key, as Stripe does; paid or refused once.
CREATE TABLE demopay_intents (
    intent_id       TEXT    PRIMARY KEY,
    idempotency_key TEXT    NOT NULL UNIQUE,
    amount_cents    BIGINT  NOT NULL CHECK (amount_cents > 0),
    currency        TEXT    NOT NULL,
    checkout_id     TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'requires_payment'
                            CHECK (status IN ('requires_payment', 'succeeded', 'failed')),
    -- The sum of the intent's refunds, kept here so that one conditional
    -- UPDATE checks and takes a refund's amount (refunded <= amount) on
    -- both engines, with no SELECT ... FOR UPDATE, which SQLite lacks.
    refunded_cents  BIGINT  NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= amount_cents),
    -- The operator's demo switch: refunds of this intent are refused.
    refuse_refunds  BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at_ms   BIGINT  NOT NULL, -- the shop's deadline, shown, not enforced
    created_at_ms   BIGINT  NOT NULL,
    settled_at_ms   BIGINT            -- when it succeeded or failed
);

CREATE TABLE demopay_refunds (
    refund_id       TEXT   PRIMARY KEY,
    idempotency_key TEXT   NOT NULL UNIQUE,
    intent_id       TEXT   NOT NULL REFERENCES demopay_intents (intent_id),
    amount_cents    BIGINT NOT NULL CHECK (amount_cents > 0),
    reason          TEXT   NOT NULL,
    event_id        TEXT   NOT NULL, -- its charge.refunded event, in demopay_events
    created_at_ms   BIGINT NOT NULL
);
CREATE INDEX demopay_refunds_intent ON demopay_refunds (intent_id);

-- Every event the provider made, with the exact JSON it signs at each
-- delivery: a redelivery sends the same id and body, as Stripe's do.
CREATE TABLE demopay_events (
    event_id        TEXT    PRIMARY KEY,
    intent_id       TEXT    NOT NULL REFERENCES demopay_intents (intent_id),
    type            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    delivered_at_ms BIGINT
);
CREATE INDEX demopay_events_intent ON demopay_events (intent_id);
