-- Opening an account no longer costs work in proportion to the owner's
-- whole history. V7 counted an actor's open streams with
--     NOT EXISTS (SELECT 1 FROM events c WHERE c.stream_id = o.stream_id AND c.event_type = p_closing_type)
-- which walks every event of every stream the actor created (the index on
-- (stream_id, version) finds the stream's events, the type is a filter):
-- an owner with 100 accounts of 100k events read 10M rows on every open,
-- past statement_timeout, and could never open again.
--
-- Now closings have an index of their own: one entry per closed stream,
-- written only when a stream closes (no cost to any other append). The
-- count is one look-up per stream the actor created (the creator index of
-- V7) and one per stream in the closings index. docs/BENCHMARKS.md has
-- EXPLAIN ANALYZE of both at that size.
--
-- The index is partial on the account's closing type, so the count is
-- planned for the type it is given (EXECUTE: a plan made with the value,
-- which the partial index matches; a cached generic plan could not use
-- it). Another closing type still counts right, without the index.
--
-- The count moves into a function of its own, so it can be measured (and
-- changed) apart from the append; the append is V7's, calling it.
CREATE INDEX events_closing_idx ON events (stream_id) WHERE event_type = 'AccountClosed';

CREATE FUNCTION ledgerline_open_streams(p_actor text, p_closing_type text) RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    open_now bigint;
BEGIN
    EXECUTE format(
        'SELECT count(*) FROM events o WHERE o.actor = $1 AND o.version = 1 '
        'AND NOT EXISTS (SELECT 1 FROM events c WHERE c.stream_id = o.stream_id AND c.event_type = %L)',
        p_closing_type)
    INTO open_now USING p_actor;
    RETURN open_now;
END;
$$;

DROP FUNCTION ledgerline_append;

CREATE FUNCTION ledgerline_append(
    p_caller_id        text,
    p_key              text,
    p_request_hash     bytea,
    p_response_status  smallint,
    p_response_body    bytea,
    p_key_expires_at   timestamptz,
    p_stream_ids       uuid[],
    p_expected         bigint[],
    p_new_versions     bigint[],
    p_event_streams    uuid[],
    p_event_versions   bigint[],
    p_event_ids        uuid[],
    p_event_types      text[],
    p_schema_versions  smallint[],
    p_payloads         bytea[],
    p_correlation_id   text,
    p_causation_id     uuid,
    p_actor            text,
    p_recorded_at      timestamptz,
    p_topic            text,
    p_outbox_keys      text[],
    p_outbox_payloads  bytea[],
    p_outbox_headers   jsonb[],
    p_snapshot_streams uuid[],
    p_snapshot_versions bigint[],
    p_snapshot_schemas smallint[],
    p_snapshot_states  bytea[],
    p_open_limit       integer,
    p_closing_type     text
) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    moved integer;
    actual bigint;
    opening integer;
    open_now bigint;
BEGIN
    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(19532, hashtext(p_caller_id || ' ' || p_key));
        INSERT INTO idempotency_keys
            (caller_id, idempotency_key, request_hash, response_status, response_body, created_at, expires_at)
        VALUES (p_caller_id, p_key, p_request_hash, p_response_status, p_response_body, p_recorded_at, p_key_expires_at)
        ON CONFLICT (caller_id, idempotency_key) DO UPDATE SET
            request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
            response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at,
            expires_at = EXCLUDED.expires_at
        WHERE idempotency_keys.expires_at <= now();
        GET DIAGNOSTICS moved = ROW_COUNT;
        IF moved = 0 THEN
            RETURN 'key_taken';
        END IF;
    END IF;

    IF p_open_limit IS NOT NULL THEN
        SELECT count(*) INTO opening FROM unnest(p_expected) AS e(version) WHERE e.version = 0;
        IF opening > 0 THEN
            PERFORM pg_advisory_xact_lock(19533, hashtext(p_actor));
            open_now := ledgerline_open_streams(p_actor, p_closing_type);
            IF open_now + opening > p_open_limit THEN
                RAISE EXCEPTION '% has % open streams, the limit is %', p_actor, open_now, p_open_limit
                    USING ERRCODE = 'LL429', DETAIL = p_open_limit::text;
            END IF;
        END IF;
    END IF;

    FOR i IN 1 .. coalesce(cardinality(p_stream_ids), 0) LOOP
        IF p_expected[i] = 0 THEN
            INSERT INTO streams (stream_id, version) VALUES (p_stream_ids[i], p_new_versions[i])
            ON CONFLICT (stream_id) DO NOTHING;
        ELSE
            UPDATE streams SET version = p_new_versions[i], updated_at = now()
            WHERE stream_id = p_stream_ids[i] AND version = p_expected[i];
        END IF;
        GET DIAGNOSTICS moved = ROW_COUNT;
        IF moved = 0 THEN
            SELECT version INTO actual FROM streams WHERE stream_id = p_stream_ids[i];
            IF NOT FOUND THEN
                RAISE EXCEPTION 'stream % does not exist', p_stream_ids[i]
                    USING ERRCODE = 'LL404', DETAIL = p_stream_ids[i]::text;
            END IF;
            RAISE EXCEPTION 'stream % is at version %, not %', p_stream_ids[i], actual, p_expected[i]
                USING ERRCODE = 'LL409', DETAIL = p_stream_ids[i]::text || ' ' || p_expected[i] || ' ' || actual;
        END IF;
    END LOOP;

    -- A refusal stores only its answer, and most appends carry no
    -- snapshot: an empty step is skipped, since starting a statement costs
    -- more than inserting one row.
    IF cardinality(p_event_ids) > 0 THEN
        INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload,
                            correlation_id, causation_id, actor, recorded_at)
        SELECT u.stream_id, u.version, u.event_id, u.event_type, u.schema_version, u.payload,
               p_correlation_id, p_causation_id, p_actor, p_recorded_at
        FROM unnest(p_event_streams, p_event_versions, p_event_ids, p_event_types, p_schema_versions, p_payloads)
            WITH ORDINALITY AS u(stream_id, version, event_id, event_type, schema_version, payload, n)
        ORDER BY u.n;

        INSERT INTO outbox (event_id, stream_id, stream_version, topic, message_key, payload, headers)
        SELECT u.event_id, u.stream_id, u.version, p_topic, u.message_key, u.payload, u.headers
        FROM unnest(p_event_ids, p_event_streams, p_event_versions, p_outbox_keys, p_outbox_payloads, p_outbox_headers)
            WITH ORDINALITY AS u(event_id, stream_id, version, message_key, payload, headers, n)
        ORDER BY u.n;
    END IF;

    IF cardinality(p_snapshot_streams) > 0 THEN
        INSERT INTO snapshots (stream_id, version, schema_version, state, taken_at)
        SELECT u.stream_id, u.version, u.schema_version, u.state, now()
        FROM unnest(p_snapshot_streams, p_snapshot_versions, p_snapshot_schemas, p_snapshot_states)
            AS u(stream_id, version, schema_version, state)
        ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version,
            schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at
        WHERE snapshots.version < EXCLUDED.version;
    END IF;

    RETURN 'committed';
END;
$$;
