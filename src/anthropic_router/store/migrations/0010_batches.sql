-- Message batches (batches/): one row per batch, one per request of a batch.
-- Times are Unix seconds (DOUBLE PRECISION), as everywhere in the store.
CREATE TABLE message_batches (
    id TEXT PRIMARY KEY,
    -- key_id() of the client key that created it (never the key); NULL without a key.
    owner TEXT,
    -- in_progress | canceling | ended
    status TEXT NOT NULL,
    total BIGINT NOT NULL,
    -- Batch-level anthropic-version / anthropic-beta headers, applied to every request (JSON).
    headers TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    cancel_initiated_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION,
    archived_at DOUBLE PRECISION,
    -- Filled once, when the batch ends (until then every request counts as processing).
    succeeded BIGINT NOT NULL DEFAULT 0,
    errored BIGINT NOT NULL DEFAULT 0,
    canceled BIGINT NOT NULL DEFAULT 0,
    expired BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX message_batches_listing ON message_batches (created_at, id);
CREATE INDEX message_batches_status ON message_batches (status);

-- state: pending until it ends as succeeded | errored | canceled | expired.
-- available_at is when a pending request may next be claimed: a claim pushes it one lease
-- ahead (renewed while running), a retry's backoff pushes it further. lease_owner names the
-- instance running it (NULL while waiting); attempts is bumped by every claim and fences
-- the final write, so a request whose lease was reclaimed is written only by the new owner.
CREATE TABLE message_batch_requests (
    batch_id TEXT NOT NULL REFERENCES message_batches (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    custom_id TEXT NOT NULL,
    params TEXT,
    state TEXT NOT NULL,
    available_at DOUBLE PRECISION NOT NULL,
    lease_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- The JSONL `result` object, as written to the results file.
    result TEXT,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (batch_id, position)
);
CREATE INDEX message_batch_requests_work ON message_batch_requests (state, available_at, position);
CREATE INDEX message_batch_requests_batch_state ON message_batch_requests (batch_id, state);
