-- The usage ledger (gateway/ledger.py): one row per /v1/messages exchange, interactive or
-- batch. Times are Unix seconds; cost_usd NULL means the price is unknown (never 0).
CREATE TABLE usage_ledger (
    request_id TEXT PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    -- floor(ts / 60): reports group whole minutes, hours and days with integer division.
    minute BIGINT NOT NULL,
    key_id TEXT,
    key_name TEXT,
    route TEXT,
    backend TEXT,
    upstream_model TEXT,
    status INTEGER NOT NULL,
    error_type TEXT,
    stream INTEGER NOT NULL,
    service_tier TEXT NOT NULL,
    batch_id TEXT,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_creation_tokens BIGINT NOT NULL,
    cache_creation_1h_tokens BIGINT NOT NULL,
    web_search_requests BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION,
    cost_source TEXT,
    latency_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
    cache_hit INTEGER
);
CREATE INDEX usage_ledger_ts ON usage_ledger (ts);
CREATE INDEX usage_ledger_minute ON usage_ledger (minute);
CREATE INDEX usage_ledger_key_ts ON usage_ledger (key_id, ts);
