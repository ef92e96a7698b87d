-- Wall-clock time (Unix milliseconds) of the last write to each record, for
-- operators inspecting a data directory. Rows written before this step read 0.
ALTER TABLE kv ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
