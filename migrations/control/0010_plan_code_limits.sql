-- Plans bound the tenants' own code (pb_hooks): CPU time of one call into it, memory of one of
-- its JavaScript runtimes, and CPU milliseconds of all its calls in one hour (over it, calls
-- into the code are refused until the next hour). For the first two, 0 means the node's
-- defaults (1 s, 64 MiB); for the hourly budget, 0 means no budget.
ALTER TABLE plans ADD COLUMN hook_cpu_ms INTEGER NOT NULL DEFAULT 1000 CHECK (hook_cpu_ms >= 0);
ALTER TABLE plans ADD COLUMN hook_memory_bytes INTEGER NOT NULL DEFAULT 67108864
  CHECK (hook_memory_bytes >= 0);
ALTER TABLE plans ADD COLUMN hook_cpu_ms_per_hour INTEGER NOT NULL DEFAULT 900000
  CHECK (hook_cpu_ms_per_hour >= 0);
-- The default plan allows 15 CPU minutes an hour (a quarter of one core); the free plan a
-- quarter of that.
UPDATE plans SET hook_cpu_ms_per_hour = 225000 WHERE name = 'free';

-- CPU milliseconds spent in the tenant's code (pb_hooks) in the hour.
ALTER TABLE usage ADD COLUMN hook_cpu_ms INTEGER NOT NULL DEFAULT 0;
