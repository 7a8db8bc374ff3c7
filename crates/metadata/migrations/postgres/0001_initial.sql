-- imgd metadata, PostgreSQL flavour. Times are Unix milliseconds. Same shape as the SQLite
-- schema so both repos pass one contract suite.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE blobs (
    hash         TEXT PRIMARY KEY,
    size         BIGINT NOT NULL,
    refcount     BIGINT NOT NULL CHECK (refcount >= 0),
    created_at   BIGINT NOT NULL,
    verified_at  BIGINT
);

CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    blob_hash   TEXT NOT NULL REFERENCES blobs(hash),
    format      TEXT NOT NULL,
    width       BIGINT NOT NULL,
    height      BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    frames      BIGINT NOT NULL,
    filename    TEXT,
    blurhash    TEXT,
    tags        TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX images_by_tenant_newest ON images (tenant_id, created_at DESC, id DESC);

CREATE TABLE image_tags (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE INDEX image_tags_by_tag_newest ON image_tags (tenant_id, tag, created_at DESC, image_id DESC);

CREATE TABLE variants (
    key          TEXT PRIMARY KEY,
    source_hash  TEXT NOT NULL,
    format       TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX variants_by_source ON variants (source_hash);
