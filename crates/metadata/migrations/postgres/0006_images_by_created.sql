-- The id filter reads every tenant's ids in creation order at start and new ones every second.
CREATE INDEX images_by_created ON images (created_at, id);
