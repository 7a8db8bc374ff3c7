-- Row-level security on tenant rows, as defence in depth: every query imgd runs on these tables
-- sits in a transaction that first names its tenant with set_config('imgd.tenant', ..., true),
-- and these policies hide (and refuse to write) other tenants' rows even if a query forgot its
-- WHERE clause. '*' is named only by lookups that are cross-tenant by design (authenticating an
-- API key, serving an image by its unguessable id). A session that names nothing sees nothing.
-- FORCE makes the policies bind the tables' owner too; superusers and BYPASSRLS roles still skip
-- them, so run imgd as an ordinary role.

ALTER TABLE images ENABLE ROW LEVEL SECURITY;
ALTER TABLE images FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON images
    USING (current_setting('imgd.tenant', true) IN ('*', tenant_id))
    WITH CHECK (current_setting('imgd.tenant', true) IN ('*', tenant_id));

ALTER TABLE image_tags ENABLE ROW LEVEL SECURITY;
ALTER TABLE image_tags FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON image_tags
    USING (current_setting('imgd.tenant', true) IN ('*', tenant_id))
    WITH CHECK (current_setting('imgd.tenant', true) IN ('*', tenant_id));

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (current_setting('imgd.tenant', true) IN ('*', tenant_id))
    WITH CHECK (current_setting('imgd.tenant', true) IN ('*', tenant_id));
