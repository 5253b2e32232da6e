-- The outbox becomes a queue: the publisher deletes a row once the broker
-- has acknowledged it, instead of marking it published and pruning it
-- later. Marking rewrote every row (its status is in partial index
-- predicates, so no update was HOT) and cost the relay about as much as
-- sending; a delete only marks the heap tuples. The event log (`events`)
-- is the history: `ledgerline outbox replay` re-queues from it.
--
-- So the table holds only pending and dead rows, few at any time, and an
-- append now writes two index entries per outbox row (the primary key and
-- event_id) instead of five:
-- - the claim walks the primary key (it skips the few dead rows);
-- - the hold-back check ("an earlier row of this account waits for its
--   retry") reads only rows that have failed: a row waits for a retry only
--   after a failed attempt (new and revived rows are due at once), so its
--   index holds just those;
-- - retention and per-stream history indexes served published rows only.
DELETE FROM outbox WHERE status = 'published';
DROP INDEX outbox_published_at_idx;
DROP INDEX outbox_pending_idx;
DROP INDEX outbox_stream_idx;
DROP INDEX outbox_pending_stream_idx;
CREATE INDEX outbox_retrying_idx ON outbox (stream_id, id) WHERE status = 'pending' AND attempts > 0;
ALTER TABLE outbox DROP COLUMN published_at;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check CHECK (status IN ('pending', 'dead'));

-- A queue's rows come and go: vacuum and analyze it after a few thousand
-- changes rather than after a fifth of its (small, changing) size, so the
-- claim's walk over the primary key does not step over many dead entries.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000
);
