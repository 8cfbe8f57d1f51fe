-- The store's own bookkeeping: one row per migration applied (see store/migrate.py).
-- Numbers: 0001-0009 the store, 0010-0019 message batches, 0020-0029 keys and the ledger.
CREATE TABLE schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    -- Unix time in seconds, as every time column of the store (portable, sortable).
    applied_at DOUBLE PRECISION NOT NULL
);
