-- How a plan's tenants ship their WAL to the backup target: 'async' (a write is acknowledged at
-- its local commit; a node's death can lose the writes of the last shipping interval) or 'sync'
-- (a write is acknowledged only once the WAL segment holding its commit is stored in the
-- target; a node's death loses no acknowledged write).
ALTER TABLE plans ADD COLUMN shipping TEXT NOT NULL DEFAULT 'async'
  CHECK (shipping IN ('async', 'sync'));
-- A tenant may override its plan's shipping ('async' or 'sync'); NULL follows the plan.
ALTER TABLE tenants ADD COLUMN shipping TEXT CHECK (shipping IS NULL OR shipping IN ('async', 'sync'));
