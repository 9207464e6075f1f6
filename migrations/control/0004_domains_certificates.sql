-- Custom domains that tenants bring, and the status of every certificate the edge holds.

CREATE TABLE domains (
  -- Lowercase host name, e.g. app.example.com.
  domain     TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  -- The value the TXT record _warren.<domain> must hold.
  token      TEXT NOT NULL,
  -- 'pending' until the TXT record is seen, then 'verified'.
  status     TEXT NOT NULL DEFAULT 'pending',
  last_error TEXT NOT NULL DEFAULT '',
  verified   TEXT NOT NULL DEFAULT '',
  created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);
CREATE INDEX domains_tenant ON domains (tenant_id);

CREATE TABLE certificates (
  host         TEXT PRIMARY KEY NOT NULL,
  issuer       TEXT NOT NULL DEFAULT '',
  -- Unix seconds; 0 when there is no certificate yet.
  not_after    INTEGER NOT NULL DEFAULT 0,
  next_renewal INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT NOT NULL DEFAULT '',
  challenge    TEXT NOT NULL DEFAULT '',
  -- Counters since the host was first seen.
  orders       INTEGER NOT NULL DEFAULT 0,
  failures     INTEGER NOT NULL DEFAULT 0,
  renewals     INTEGER NOT NULL DEFAULT 0,
  updated      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);
