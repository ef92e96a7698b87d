-- Wall-clock time of the last write to each record, for operators
-- inspecting the database. NULL for rows written before this step.
ALTER TABLE kv ADD COLUMN updated_at timestamptz;
