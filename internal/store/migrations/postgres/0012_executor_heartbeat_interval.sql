-- Each instance records how often it beats, so that another, configured
-- otherwise, waits for several of its beats to be missed before taking it
-- over. 0: an instance of a build that did not record it.
ALTER TABLE executors ADD COLUMN heartbeat_every_ms BIGINT NOT NULL DEFAULT 0;
