-- Console accounts carry a plan: its maxProjects caps the projects the account owns, and the
-- account's new projects start on it. Accounts start on 'default', whose cap applied to every
-- account before accounts had plans of their own.
ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'default';
CREATE INDEX accounts_plan ON accounts (plan);
