DROP TABLE catalog_item_media;
DROP TABLE catalog_items;
DROP INDEX uploads_media_id;
DROP INDEX media_blob_key;
ALTER TABLE media DROP COLUMN blob_key;
DROP TABLE blobs;
