CREATE TABLE products (product_id SERIAL PRIMARY KEY, inventory INTEGER NOT NULL);
INSERT INTO products (product_id, inventory) VALUES (1, 100);
-- What DBOS would create at its launch: the table loadgen reads the pending workflows from.
CREATE SCHEMA dbos;
CREATE TABLE dbos.workflow_status (workflow_uuid TEXT PRIMARY KEY, status TEXT NOT NULL);
