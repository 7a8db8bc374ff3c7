-- Optimistic concurrency for tenant settings: every write of a tenant's settings is
-- `UPDATE ... SET ..., version = version + 1 WHERE id = $1 AND version = $2`, so a
-- read-modify-write never silently undoes a concurrent one. Usage counters do not bump it.
ALTER TABLE tenants ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
