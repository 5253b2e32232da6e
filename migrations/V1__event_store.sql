-- The write side: streams, events, snapshots, the transactional outbox and
-- idempotency records. Applied by refinery (see shared/src/migrate.rs).

-- One row per stream (account), holding its current version. Appends move it
-- from the expected version to the new one: this is the optimistic lock.
CREATE TABLE streams (
    stream_id   uuid PRIMARY KEY,
    version     bigint NOT NULL CHECK (version > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       uuid NOT NULL REFERENCES streams (stream_id),
    version         bigint NOT NULL CHECK (version > 0),
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    schema_version  smallint NOT NULL CHECK (schema_version > 0),
    payload         bytea NOT NULL,
    correlation_id  text NOT NULL,
    causation_id    uuid NOT NULL,
    actor           text NOT NULL,
    recorded_at     timestamptz NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

-- The latest snapshot per stream; loading starts here and replays the rest.
CREATE TABLE snapshots (
    stream_id       uuid PRIMARY KEY REFERENCES streams (stream_id),
    version         bigint NOT NULL CHECK (version > 0),
    schema_version  smallint NOT NULL,
    state           bytea NOT NULL,
    taken_at        timestamptz NOT NULL
);

-- One row per event, written in the same transaction, drained to Kafka by the
-- outbox publisher. No foreign key to events: published rows are pruned.
CREATE TABLE outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid NOT NULL UNIQUE,
    stream_id        uuid NOT NULL,
    stream_version   bigint NOT NULL,
    topic            text NOT NULL,
    message_key      text NOT NULL,
    payload          bytea NOT NULL,
    headers          jsonb NOT NULL DEFAULT '[]',
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'published', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_stream_idx ON outbox (stream_id, id);

-- The first answer to each (caller, Idempotency-Key), kept for a window.
CREATE TABLE idempotency_keys (
    caller_id        text NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    response_status  smallint NOT NULL,
    response_body    bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (caller_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
