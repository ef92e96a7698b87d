-- Records. bytea keys compare byte-wise (memcmp), which is the store's
-- ordering contract; text would sort by collation.
CREATE TABLE kv (
    key     bytea  NOT NULL PRIMARY KEY CHECK (octet_length(key) <= 1024),
    value   bytea  NOT NULL,
    version bigint NOT NULL CHECK (version > 0)
);

-- One value per writing transaction; every record written by that
-- transaction carries it as its version.
CREATE SEQUENCE revision_seq AS bigint MINVALUE 1 NO CYCLE;
