ALTER TABLE media DROP COLUMN duration_ms;
