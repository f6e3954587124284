ALTER TABLE uploads DROP COLUMN final_id;
ALTER TABLE uploads DROP COLUMN concat;
ALTER TABLE uploads DROP COLUMN event_id;
