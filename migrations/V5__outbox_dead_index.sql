-- `ledgerline outbox status` counts the outbox by state; each count now
-- walks its own partial index (pending: outbox_pending_idx, published:
-- outbox_published_at_idx, dead: this one) instead of scanning the table.
CREATE INDEX outbox_dead_idx ON outbox (id) WHERE status = 'dead';
