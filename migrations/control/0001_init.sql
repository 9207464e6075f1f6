-- The control plane's database: the source of truth for which tenants exist and which
-- hostnames reach them.

CREATE TABLE tenants (
  -- Stable id; names the tenant's directory, so a slug freed by a deletion never sees old data.
  id      TEXT PRIMARY KEY NOT NULL,
  slug    TEXT NOT NULL UNIQUE,
  -- 'active' or 'suspended'.
  status  TEXT NOT NULL DEFAULT 'active',
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);
