-- The append of V6 with one more step: a limit on open streams per actor
-- (the per-owner limit on open accounts). Everything else is unchanged; the
-- steps are explained in V6.
--
-- 1b. (after the key claim) When p_open_limit is set and the append creates
--     streams (expected version 0), take an advisory lock on the actor's
--     hash, count the actor's open streams (a stream belongs to the actor of
--     its version-1 event and is open until it has an event of type
--     p_closing_type) and raise SQLSTATE LL429 with DETAIL = the limit if
--     the new ones would pass it. The lock is held until commit, so two
--     racing creations by one actor are counted one after the other: each
--     statement of this (volatile) function sees what committed before it.
--     The lock order is key, then actor, then streams, like every caller.
--
-- The count reads the index below: one entry per stream, so an actor's
-- count costs a look-up per stream they created plus one per stream to
-- check it is not closed (by events_stream_version_key).
CREATE INDEX events_stream_creator_idx ON events (actor) WHERE version = 1;

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
            SELECT count(*) INTO open_now FROM events o
            WHERE o.actor = p_actor AND o.version = 1
              AND NOT EXISTS (SELECT 1 FROM events c WHERE c.stream_id = o.stream_id AND c.event_type = p_closing_type);
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
