-- tus uploads (SPEC 12): the event whose gallery a completed upload joins, and
-- concatenation. `concat` is NULL for a plain upload, 'partial' for a part, or
-- 'final ID ID ...' naming the parts in order; a part names the final that claimed it.
ALTER TABLE uploads ADD COLUMN event_id BIGINT;
ALTER TABLE uploads ADD COLUMN concat TEXT;
ALTER TABLE uploads ADD COLUMN final_id TEXT;
