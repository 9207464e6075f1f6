-- The console: developer accounts, their sessions and one-time links, and which account owns
-- which tenant.

CREATE TABLE accounts (
  id       TEXT PRIMARY KEY NOT NULL,
  -- Stored lowercased; unique regardless of case.
  email    TEXT NOT NULL UNIQUE COLLATE NOCASE,
  -- argon2id PHC string.
  password TEXT NOT NULL,
  verified INTEGER NOT NULL DEFAULT 0,
  -- A disabled account cannot sign in; its sessions are removed when it is disabled.
  disabled INTEGER NOT NULL DEFAULT 0,
  created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ')),
  updated  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);

-- Signed-in browsers. Only a SHA-256 of the cookie's token is kept, so a copy of this table
-- signs nobody in.
CREATE TABLE account_sessions (
  token_hash TEXT PRIMARY KEY NOT NULL,
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  -- Unix seconds.
  expires    INTEGER NOT NULL,
  created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);
CREATE INDEX account_sessions_account ON account_sessions (account_id);

-- One-time links sent by mail: 'verify' (email verification) and 'reset' (password reset).
-- Hashed like sessions.
CREATE TABLE account_tokens (
  token_hash TEXT PRIMARY KEY NOT NULL,
  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,
  -- Unix seconds.
  expires    INTEGER NOT NULL
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, kind);

-- The account that owns a tenant; NULL for tenants the operator created.
ALTER TABLE tenants ADD COLUMN account_id TEXT REFERENCES accounts(id);
CREATE INDEX tenants_account ON tenants (account_id);

-- The key that signs the console's CSRF tokens, made once with the database.
CREATE TABLE console_keys (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  csrf BLOB NOT NULL
);
INSERT INTO console_keys (id, csrf) VALUES (1, randomblob(32));
