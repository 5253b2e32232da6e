-- Reconciliation (shared/src/reconcile): the read model is compared with the
-- streams changed since the last pass, so those must be found by time.
CREATE INDEX streams_updated_at_idx ON streams (updated_at, stream_id);

-- Where reconciliation and rebuilds are: `changed_since` is the newest
-- stream change a reconcile pass has checked (the next pass looks again a
-- little before it, for transactions that committed late); `sweep_after` is
-- the last stream id a sweep or rebuild finished (NULL: from the start).
CREATE TABLE read_model_progress (
    name           text PRIMARY KEY,
    changed_since  timestamptz,
    sweep_after    uuid,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A rebuild now walks the streams (read_model_progress), not the global
-- positions: a position is taken at insert, not at commit, so paging by it
-- could step over an event whose transaction committed late.
DROP TABLE projection_checkpoints;

-- The publisher's hold-back check ("an earlier row of this account is still
-- pending") looked through every row of the account, published ones too.
-- This index holds only the pending rows, which is all that check reads.
CREATE INDEX outbox_pending_stream_idx ON outbox (stream_id, id) WHERE status = 'pending';
