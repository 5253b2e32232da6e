#!/usr/bin/env bash
# The database's own side of one deposit, with nothing of Ledgerline's code
# around it, against the same server's raw commit rate, in one run (issue 11,
# docs/BENCHMARKS.md "The ceiling"). pgbench drives, 10 s a line, at 1 and
# 16 clients, each client on an account of its own (no conflicts):
#
#   raw INSERT      one small row per transaction: the baseline;
#   one event row   one INSERT into `events` alone (its three indexes and
#                   foreign key): what a command would cost if it were one row;
#   read + append   what a deposit sends: a read of the account's version,
#                   then one call of `ledgerline_append` (key claim, version
#                   move, event, outbox row), its own commit; two round trips.
#
#   scripts/services.sh
#   scripts/append-ceiling.sh [seconds per line]
#
# It creates, migrates (the SQL files of migrations/, in order) and drops a
# database of its own, `ledgerline_ceiling`. Plain TCP without TLS, like the
# command path's own harness (`command_bench`).
set -euo pipefail

seconds=${1:-10}
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
export PGHOST=${PGHOST_ADDR:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=postgres PGPASSWORD=${PGPASSWORD:-postgres} PGSSLMODE=disable
export PGOPTIONS='-c client_min_messages=warning'
db=ledgerline_ceiling
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

psql -d postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
for file in $(ls "$repo_dir/migrations" | sort -V); do
    psql -d "$db" -q -v ON_ERROR_STOP=1 -f "$repo_dir/migrations/$file" >/dev/null
done
psql -d "$db" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE FUNCTION bench_account(client int) RETURNS uuid IMMUTABLE LANGUAGE sql
    AS $$ SELECT ('00000000-0000-0000-0000-' || lpad(client::text, 12, '0'))::uuid $$;
INSERT INTO streams (stream_id, version) SELECT bench_account(i), 1 FROM generate_series(0, 63) i;
INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at)
SELECT bench_account(i), 1, gen_random_uuid(), 'AccountOpened', 1, '\x00', 'bench', gen_random_uuid(), 'bench', now()
FROM generate_series(0, 63) i;
CREATE TABLE bench_raw_inserts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id uuid NOT NULL,
                                amount bigint NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now());
CREATE SEQUENCE bench_versions START 1000000;
VACUUM ANALYZE;
SQL

cat >"$work/raw.sql" <<'SQL'
INSERT INTO bench_raw_inserts (account_id, amount) VALUES (bench_account(:client_id), 1);
SQL
cat >"$work/one_event.sql" <<'SQL'
INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, correlation_id, causation_id, actor, recorded_at)
VALUES (bench_account(:client_id), nextval('bench_versions'), gen_random_uuid(), 'MoneyDeposited', 1,
        convert_to(repeat('p', 40), 'UTF8'), 'bench', gen_random_uuid(), 'bench', now());
SQL
# The arguments a deposit passes (sizes as the command API's: a 40-byte
# event, its ~400-byte envelope with four headers, a 32-byte request hash).
cat >"$work/deposit.sql" <<'SQL'
SELECT version AS v FROM streams WHERE stream_id = bench_account(:client_id) \gset
\set next :v + 1
SELECT ledgerline_append('bench', gen_random_uuid()::text, sha256(gen_random_uuid()::text::bytea), 200::int2,
  convert_to('{"account_id":"x","version":5,"balance":100,"currency":"EUR"}', 'UTF8'), now() + interval '1 day',
  ARRAY[bench_account(:client_id)], ARRAY[:v::int8], ARRAY[:next::int8],
  ARRAY[bench_account(:client_id)], ARRAY[:next::int8], ARRAY[gen_random_uuid()], ARRAY['MoneyDeposited'], ARRAY[1::int2],
  ARRAY[convert_to(repeat('p', 40), 'UTF8')], 'bench', gen_random_uuid(), 'bench', now(), 'ledgerline.account-events',
  ARRAY[bench_account(:client_id)::text], ARRAY[convert_to(repeat('e', 400), 'UTF8')],
  ARRAY['[["event_type","MoneyDeposited"],["schema_version","1"],["event_id","x"],["correlation_id","y"]]'::jsonb],
  '{}'::uuid[], '{}'::int8[], '{}'::int2[], '{}'::bytea[], NULL::int4, NULL::text);
SQL

rate() { # clients script
    pgbench -n -M prepared -c "$1" -j "$(($1 > 1 ? 2 : 1))" -T "$seconds" -f "$work/$2" "$db" 2>&1 |
        awk '/^tps/ { printf "%.0f", $3 } /aborted|ERROR/ { print > "/dev/stderr" }'
}
echo "PostgreSQL $(psql -d "$db" -Atc 'show server_version'), ${seconds}s a line, pgbench -M prepared, no TLS"
for clients in 16 1; do
    raw=$(rate "$clients" raw.sql)
    one=$(rate "$clients" one_event.sql)
    deposit=$(rate "$clients" deposit.sql)
    awk -v c="$clients" -v raw="$raw" -v one="$one" -v dep="$deposit" 'BEGIN {
        printf "clients %2d  raw INSERT %6d/s  one event row %6d/s = %.2fx  read + append %6d/s = %.2fx\n", c, raw, one, one / raw, dep, dep / raw
    }'
done
