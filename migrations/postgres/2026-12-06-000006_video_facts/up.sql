-- Video posters (SPEC 11, issue 25): a video's duration, in milliseconds, recorded with
-- its displayed width and height when its first poster is made.
ALTER TABLE media ADD COLUMN duration_ms BIGINT;
