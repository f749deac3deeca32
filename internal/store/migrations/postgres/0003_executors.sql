-- The instances sharing this database, each with its last heartbeat in
-- the database's own clock, so that skewed machine clocks cannot make a
-- live instance look dead.
CREATE TABLE executors (
    executor_id     TEXT   PRIMARY KEY,
    heartbeat_at_ms BIGINT NOT NULL
);
