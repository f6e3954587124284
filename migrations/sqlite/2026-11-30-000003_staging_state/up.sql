-- What the blob store keeps of an upload's staging between chunks (S3: the multipart
-- upload's id, its parts and the small chunks not yet grouped into a part). Opaque to SQL.
ALTER TABLE uploads ADD COLUMN staging_state TEXT;
