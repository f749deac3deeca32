-- Each instance writes here every second, to know whether its database
-- still takes writes (a full disk, a read-only failover): it reports
-- itself unready while it does not.
CREATE TABLE write_probe (
    executor_id TEXT   PRIMARY KEY,
    written_ms  BIGINT NOT NULL
);
