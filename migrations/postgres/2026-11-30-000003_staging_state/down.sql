ALTER TABLE uploads DROP COLUMN staging_state;
