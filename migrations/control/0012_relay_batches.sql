-- Cluster: the highest batch of usage and backup runs the leader applied per sending node
-- process (`<node id>/<random hex>`), so a batch sent again is not counted twice.

CREATE TABLE relay_batches (
  origin TEXT PRIMARY KEY,
  seq    INTEGER NOT NULL,
  at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%fZ'))
);
