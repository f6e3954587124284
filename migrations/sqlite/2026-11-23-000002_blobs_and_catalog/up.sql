-- Blobs get a row of their own, named by a key that is never reused: the SHA-256 of
-- the bytes plus the id of the upload that first stored them. A blob released by a
-- delete is removed under its key; identical bytes uploaded later get a new key, so the
-- removal can never hit them.
CREATE TABLE blobs (
    blob_key TEXT PRIMARY KEY NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO blobs (blob_key, sha256, size, created_at)
    SELECT sha256, sha256, MAX(size), MIN(created_at) FROM media GROUP BY sha256;
ALTER TABLE media ADD COLUMN blob_key TEXT REFERENCES blobs (blob_key);
UPDATE media SET blob_key = sha256;
CREATE INDEX media_blob_key ON media (blob_key);
-- Deleting media deletes the uploads that made them.
CREATE INDEX uploads_media_id ON uploads (media_id);

-- The catalog: products and variants in one table (a variant names its product).
-- References to media have no cascade: the database itself refuses to delete a media
-- that a product or variant still lists.
CREATE TABLE catalog_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('product', 'variant')),
    product_id BIGINT REFERENCES catalog_items (id),
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX catalog_items_org_kind_id ON catalog_items (org, kind, id);
CREATE INDEX catalog_items_product ON catalog_items (product_id);

CREATE TABLE catalog_item_media (
    item_id BIGINT NOT NULL REFERENCES catalog_items (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    media_id BIGINT NOT NULL REFERENCES media (id),
    PRIMARY KEY (item_id, position)
);
CREATE INDEX catalog_item_media_media ON catalog_item_media (media_id);
