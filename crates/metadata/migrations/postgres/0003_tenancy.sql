-- Tenancy: policy, quota and usage counters on the tenant row, so the quota check and the
-- usage update are one conditional UPDATE inside the upload's transaction (its row lock
-- serialises concurrent uploads of one tenant); key labels; presets with versions and an active
-- pointer per name.

-- The usage backfill below reads images, which row-level security hides from a session that
-- names no tenant.
SELECT set_config('imgd.tenant', '*', true);

ALTER TABLE tenants ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tenants ADD COLUMN delivery TEXT NOT NULL DEFAULT 'public';
ALTER TABLE tenants ADD COLUMN quota_bytes BIGINT;
ALTER TABLE tenants ADD COLUMN quota_images BIGINT;
ALTER TABLE tenants ADD COLUMN used_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN used_images BIGINT NOT NULL DEFAULT 0;
-- JSON array of {id, secret, created_at}, newest first, at most two.
ALTER TABLE tenants ADD COLUMN signing_keys TEXT NOT NULL DEFAULT '[]';

UPDATE tenants SET
    used_bytes = (SELECT COALESCE(SUM(bytes), 0) FROM images WHERE images.tenant_id = tenants.id),
    used_images = (SELECT COUNT(*) FROM images WHERE images.tenant_id = tenants.id);

ALTER TABLE api_keys ADD COLUMN name TEXT;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at DESC);

CREATE TABLE presets (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    options     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE preset_heads (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    name            TEXT NOT NULL,
    active_version  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE presets ENABLE ROW LEVEL SECURITY;
ALTER TABLE presets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON presets
    USING (current_setting('imgd.tenant', true) IN ('*', tenant_id))
    WITH CHECK (current_setting('imgd.tenant', true) IN ('*', tenant_id));

ALTER TABLE preset_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE preset_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON preset_heads
    USING (current_setting('imgd.tenant', true) IN ('*', tenant_id))
    WITH CHECK (current_setting('imgd.tenant', true) IN ('*', tenant_id));
