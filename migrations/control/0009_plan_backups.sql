-- Plans bound the backups a tenant keeps at /api/backups (its own PocketBase-style backups):
-- how many, and their bytes together. 0 = unlimited. The seeded plans get modest bounds
-- (backups are whole copies of a tenant); the operator changes them like any quota.
ALTER TABLE plans ADD COLUMN max_backups INTEGER NOT NULL DEFAULT 0 CHECK (max_backups >= 0);
ALTER TABLE plans ADD COLUMN max_backup_bytes INTEGER NOT NULL DEFAULT 0
  CHECK (max_backup_bytes >= 0);
UPDATE plans SET max_backups = 10 WHERE name = 'default';
UPDATE plans SET max_backups = 3, max_backup_bytes = 1073741824 WHERE name = 'free';
