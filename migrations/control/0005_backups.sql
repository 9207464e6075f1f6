-- Backup bookkeeping: every backup, restore and restore drill the node ran, with its outcome.
-- The backups themselves (and their manifests) live in the backup target; this table answers
-- "when did this tenant last back up successfully" without listing a bucket.

CREATE TABLE backup_runs (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,
  slug      TEXT NOT NULL,
  -- 'snapshot', 'restore' or 'verify'.
  kind      TEXT NOT NULL,
  -- The backup made, restored or checked ('' until known).
  backup    TEXT NOT NULL DEFAULT '',
  -- 'running', 'complete' or 'failed'.
  status    TEXT NOT NULL DEFAULT 'running',
  started   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')),
  finished  TEXT,
  -- Compressed bytes of the backup.
  bytes     INTEGER NOT NULL DEFAULT 0,
  error     TEXT NOT NULL DEFAULT ''
);

CREATE INDEX backup_runs_tenant ON backup_runs (tenant_id, kind, id);
