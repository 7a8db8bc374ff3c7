-- imgd metadata, SQLite flavour. Times are Unix milliseconds.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- Server-wide values created once by the first node (the API-key pepper).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0
);

-- One row per distinct content; images hold references.
CREATE TABLE blobs (
    hash         TEXT PRIMARY KEY,
    size         INTEGER NOT NULL,
    refcount     INTEGER NOT NULL CHECK (refcount >= 0),
    created_at   INTEGER NOT NULL,
    verified_at  INTEGER
);

CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    blob_hash   TEXT NOT NULL REFERENCES blobs(hash),
    format      TEXT NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    frames      INTEGER NOT NULL,
    filename    TEXT,
    blurhash    TEXT,
    tags        TEXT NOT NULL,
    metadata    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX images_by_tenant_newest ON images (tenant_id, created_at DESC, id DESC);

-- Tags again, one row each, so the tag filter is an index lookup.
CREATE TABLE image_tags (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE INDEX image_tags_by_tag_newest ON image_tags (tenant_id, tag, created_at DESC, image_id DESC);

CREATE TABLE variants (
    key          TEXT PRIMARY KEY,
    source_hash  TEXT NOT NULL,
    format       TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX variants_by_source ON variants (source_hash);
