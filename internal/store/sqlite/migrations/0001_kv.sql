-- Records, ordered by key bytes. Keys are always bound as BLOBs so that
-- SQLite compares them with memcmp (byte-wise order); the CHECK makes a
-- TEXT-bound key an error instead of a silently mis-sorted row.
CREATE TABLE kv (
    key     BLOB    NOT NULL PRIMARY KEY CHECK (typeof(key) = 'blob'),
    value   BLOB    NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0)
) WITHOUT ROWID;

-- Store-wide counters. 'revision' is the last revision handed to a writing
-- transaction.
CREATE TABLE meta (
    name  TEXT    NOT NULL PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('revision', 0);
