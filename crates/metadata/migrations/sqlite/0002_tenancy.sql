-- Tenancy: policy, quota and usage counters on the tenant row, so the quota check and the
-- usage update are one conditional UPDATE inside the upload's transaction; key labels; presets
-- with versions and an active pointer per name.

ALTER TABLE tenants ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN delivery TEXT NOT NULL DEFAULT 'public';
ALTER TABLE tenants ADD COLUMN quota_bytes INTEGER;
ALTER TABLE tenants ADD COLUMN quota_images INTEGER;
ALTER TABLE tenants ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN used_images INTEGER NOT NULL DEFAULT 0;
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
    version     INTEGER NOT NULL,
    options     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE preset_heads (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    name            TEXT NOT NULL,
    active_version  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
