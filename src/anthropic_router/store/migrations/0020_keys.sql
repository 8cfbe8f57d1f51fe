-- Client keys (gateway/keys.py): only the SHA-256 of a key is kept, never the key.
-- id is "key_" + the first 12 hex digits of that hash: the id the exchange log already shows.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    budget_usd DOUBLE PRECISION,
    budget_period TEXT,
    rpm BIGINT,
    tpm BIGINT,
    -- JSON list of globs over model names; NULL allows every model.
    models TEXT
);

-- Spend per key and budget period ("2026-12-01" for a day, "2026-12" for a month), added
-- to by the ledger writer of every instance in the transaction that writes the rows.
CREATE TABLE key_spend (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    spent_usd DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key_id, period)
);
