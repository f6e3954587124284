DROP TABLE catalog_item_media;
DROP TABLE catalog_items;
DROP INDEX uploads_media_id;
DROP INDEX media_blob_key;
ALTER TABLE media DROP COLUMN blob_key;
DROP TABLE blobs;
-- Note: SQLite refuses DROP COLUMN on a foreign-key column; reverting this migration on
-- SQLite means restoring a backup taken before it.
