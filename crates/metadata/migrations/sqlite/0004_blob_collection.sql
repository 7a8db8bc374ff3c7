-- Blob collection without locks (see imgd-core `service::gc`). Deleting an image only drops its
-- reference; a collector removes the bytes of a blob with no reference, no live pin and an
-- orphan stamp older than the grace period, after claiming it in one UPDATE that the database
-- serialises against an upload's pin. Existing rows all have references (the old delete removed
-- a row with its last one), so they start `live` with nothing else set.

-- 'live', or 'deleting' once a collector has claimed it (then only that collector touches it).
ALTER TABLE blobs ADD COLUMN state TEXT NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting'));
-- Random per incarnation of the row: a pin commits a reference only into the row it pinned.
ALTER TABLE blobs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
-- Uploads between pin and commit (a crashed one stays counted until its pin expires).
ALTER TABLE blobs ADD COLUMN pins INTEGER NOT NULL DEFAULT 0;
-- No collector claims the row before this (Unix ms); cleared when the last pin is given back.
ALTER TABLE blobs ADD COLUMN pinned_until INTEGER;
-- When the last reference went (Unix ms); NULL while referenced or never referenced.
ALTER TABLE blobs ADD COLUMN orphaned_at INTEGER;
-- The collector's claim: when, and its token.
ALTER TABLE blobs ADD COLUMN claimed_at INTEGER;
ALTER TABLE blobs ADD COLUMN claim_token INTEGER;

CREATE INDEX blobs_unreferenced ON blobs (hash) WHERE refcount = 0;
