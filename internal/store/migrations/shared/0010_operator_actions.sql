-- The operator's audit log: every action taken from the console or its API
-- (cancel, resume, fork), refused or not, with who took it (a session or
-- the bearer token), from which address, and what came of it.
CREATE TABLE operator_actions (
    at_ms       BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    address     TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    workflow_id TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL
);

CREATE INDEX operator_actions_at ON operator_actions (at_ms);
