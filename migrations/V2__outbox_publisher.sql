-- The outbox publisher deletes published rows after a retention period
-- (LEDGERLINE_OUTBOX_RETENTION_HOURS); this index finds them without reading
-- the pending ones. Pending and dead rows are never pruned.
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE status = 'published';
