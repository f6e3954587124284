-- Renditions of raster images (SPEC 11), owned by the blob they were made of: deleting the
-- blob's row (its last media went) deletes them, and the delete removes their bytes
-- (blob keys `<blob_key>.<variant>`). `status` 'not-decodable' records that none can be
-- made, so a damaged image is not decoded again on every request.
CREATE TABLE renditions (
    blob_key TEXT NOT NULL REFERENCES blobs (blob_key) ON DELETE CASCADE,
    variant TEXT NOT NULL CHECK (variant IN ('thumb', 'preview')),
    status TEXT NOT NULL CHECK (status IN ('ready', 'not-decodable')),
    content_type TEXT,
    size BIGINT,
    sha256 TEXT,
    width INTEGER,
    height INTEGER,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (blob_key, variant)
);
