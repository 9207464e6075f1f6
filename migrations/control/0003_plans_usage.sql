-- Plans (quotas per tenant), each tenant's plan, and hourly usage per tenant.

CREATE TABLE plans (
  name                     TEXT PRIMARY KEY NOT NULL,
  -- Token bucket of the tenant API: refill rate and size. 0 = unlimited.
  requests_per_second      INTEGER NOT NULL DEFAULT 0 CHECK (requests_per_second >= 0),
  request_burst            INTEGER NOT NULL DEFAULT 0 CHECK (request_burst >= 0),
  -- Database and files of one tenant, in bytes. 0 = unlimited.
  storage_bytes            INTEGER NOT NULL DEFAULT 0 CHECK (storage_bytes >= 0),
  -- Largest request body (file uploads included), in bytes. 0 = the API's own limits only.
  max_upload_bytes         INTEGER NOT NULL DEFAULT 0 CHECK (max_upload_bytes >= 0),
  -- Realtime connections open at once per tenant. 0 = unlimited.
  max_realtime_connections INTEGER NOT NULL DEFAULT 0 CHECK (max_realtime_connections >= 0),
  -- Projects one account may own. 0 = unlimited.
  max_projects             INTEGER NOT NULL DEFAULT 0 CHECK (max_projects >= 0),
  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')),
  updated TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);

-- Every tenant starts on 'default'. It limits only the number of projects, so existing
-- installations behave as before until the operator sets quotas; 'free' is a starting point
-- for a limited offer.
INSERT INTO plans (name, requests_per_second, request_burst, storage_bytes, max_upload_bytes,
                   max_realtime_connections, max_projects)
VALUES ('default', 0, 0, 0, 0, 0, 3),
       ('free', 20, 100, 536870912, 10485760, 100, 1);

-- The plan is checked by the application (a REFERENCES clause cannot be added with a default).
ALTER TABLE tenants ADD COLUMN plan TEXT NOT NULL DEFAULT 'default';

CREATE INDEX tenants_status ON tenants (status, slug);
CREATE INDEX tenants_plan ON tenants (plan, slug);

-- Usage per tenant per hour. Rows are added to by each flush of the in-memory counters.
CREATE TABLE usage (
  -- The tenant's id (not its slug: a slug can be reused after a deletion).
  tenant_id        TEXT NOT NULL,
  -- Start of the hour, UTC: 'YYYY-MM-DD HH:00:00Z'.
  hour             TEXT NOT NULL,
  requests         INTEGER NOT NULL DEFAULT 0,
  bytes_in         INTEGER NOT NULL DEFAULT 0,
  bytes_out        INTEGER NOT NULL DEFAULT 0,
  -- Largest measured size of database and files in the hour.
  storage_bytes    INTEGER NOT NULL DEFAULT 0,
  realtime_seconds INTEGER NOT NULL DEFAULT 0,
  realtime_peak    INTEGER NOT NULL DEFAULT 0,
  records_written  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, hour)
) WITHOUT ROWID;
