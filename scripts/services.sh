#!/usr/bin/env bash
# Brings up what Ledgerline's tests and local runs need, on Debian:
# PostgreSQL, Redis and a Kafka-compatible broker (tansu). Installs them when
# missing (apt; cargo for tansu), starts them when stopped, creates the
# databases and topics. Safe to run twice; quick when all is up.
#
#   scripts/services.sh
#   scripts/services.sh --reset-broker   # the local broker's data deleted, its topics
#                                        # made again, and what it held sent again
#                                        # (see docs/RELIABILITY.md)
#
# Environment: PGHOST_ADDR (127.0.0.1), PGPORT (5432), REDIS_PORT (6379),
# KAFKA_PORT (9092), LEDGERLINE_EVENTS_TOPIC, LEDGERLINE_DLQ_TOPIC.
set -euo pipefail

pg_host=${PGHOST_ADDR:-127.0.0.1}
pg_port=${PGPORT:-5432}
redis_port=${REDIS_PORT:-6379}
kafka_port=${KAFKA_PORT:-9092}
events_topic=${LEDGERLINE_EVENTS_TOPIC:-ledgerline.account-events}
dlq_topic=${LEDGERLINE_DLQ_TOPIC:-ledgerline.account-events.dlq}
repo_dir=$(cd "$(dirname "$0")/.." && pwd)
admin_url="postgres://postgres:postgres@${pg_host}:${pg_port}/postgres"

say() { printf 'services: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Waits for a command to succeed, up to a deadline in seconds.
wait_for() {
    local what=$1 deadline=$((SECONDS + $2)); shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            say "gave up waiting for $what"; return 1
        fi
        sleep 0.2
    done
}

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-client)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL: start every cluster that is down (a fresh install has one, "main").
if ! pg_isready -h "$pg_host" -p "$pg_port" >/dev/null 2>&1; then
    for version in $(ls /etc/postgresql); do
        say "starting PostgreSQL $version"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for PostgreSQL 60 pg_isready -h "$pg_host" -p "$pg_port"
fi

# Debian's default asks TCP clients for a password: give postgres the one
# the default URLs use. Where the server trusts local clients, this is skipped.
if ! psql "$admin_url" -Atqc 'select 1' >/dev/null 2>&1; then
    say "setting the postgres user's password"
    as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
    psql "$admin_url" -Atqc 'select 1' >/dev/null
fi

for db in ledgerline ledgerline_test; do
    if [ -z "$(psql "$admin_url" -Atqc "select 1 from pg_database where datname = '$db'")" ]; then
        say "creating database $db"
        psql "$admin_url" -qc "CREATE DATABASE $db" >/dev/null
    fi
done

# Redis: a throwaway cache, nothing kept on disk.
if ! redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --logfile /tmp/ledgerline-redis.log >/dev/null
    wait_for Redis 30 redis-cli -h 127.0.0.1 -p "$redis_port" ping
fi

# Kafka: tansu, an Apache-2.0 Kafka-compatible broker written in Rust (Apache
# Kafka itself is not installable here). SQLite storage: it keeps records and
# committed offsets across restarts (delete .local/tansu/tansu.db to reset);
# its memory:// engine loses records, so it is not used. Built once with
# cargo (about 7 minutes on 2 cores); --locked because some feature sets do
# not compile with newer dependencies.
tansu_version=0.6.0
tansu_dir="$repo_dir/.local/tansu"
kafka_url="tcp://127.0.0.1:${kafka_port}"
export PATH="$HOME/.cargo/bin:$PATH"
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! tansu --version 2>/dev/null | grep -x "tansu ${tansu_version}" >/dev/null; then
    say "installing tansu ${tansu_version} with cargo (several minutes, once)"
    cargo install tansu --version "$tansu_version" --locked --features libsql
fi
if [ "${1:-}" = "--reset-broker" ]; then
    # tansu 0.6.0's SQLite storage can be left unable to take produce
    # requests after a crash under load (docs/RELIABILITY.md). Its data goes;
    # nothing of Ledgerline's does: the event log keeps every event, and
    # `ledgerline outbox replay --since ...` sends what the broker lost.
    say "resetting the local broker: stopping it and deleting .local/tansu/tansu.db"
    if [ -f "$tansu_dir/tansu.pid" ]; then kill "$(cat "$tansu_dir/tansu.pid")" 2>/dev/null || true; fi
    wait_for "tansu to stop" 30 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$kafka_port) 2>/dev/null"
    rm -f "$tansu_dir"/tansu.db*
fi
if ! port_open "$kafka_port"; then
    mkdir -p "$tansu_dir"
    say "starting tansu on 127.0.0.1:${kafka_port} (logs: .local/tansu/tansu.log)"
    # The storage URL is relative (an absolute sqlite:/// path fails), hence the cd.
    (
        cd "$tansu_dir"
        setsid nohup tansu broker --listener-url "$kafka_url" --advertised-listener-url "$kafka_url" \
            --storage-engine sqlite://tansu.db >>tansu.log 2>&1 </dev/null &
        echo $! >tansu.pid
    )
    wait_for tansu 60 port_open "$kafka_port"
fi
# Topics are not created on first use: create the missing ones (3 partitions;
# key = account id, so each account's events stay in one partition, in order).
if ! topics=$(timeout 30 tansu topic list --broker "$kafka_url"); then
    say "tansu on 127.0.0.1:${kafka_port} accepts connections but does not answer (see .local/tansu/tansu.log);"
    say "stop it (kill \$(cat .local/tansu/tansu.pid)) and run this script again"
    exit 1
fi
for topic in "$events_topic" "$dlq_topic"; do
    if ! grep -q "\"name\":\"${topic}\"" <<<"$topics"; then
        say "creating topic $topic"
        timeout 30 tansu topic create "$topic" --partitions 3 --broker "$kafka_url" >/dev/null
    fi
done

# DynamoDB: the moto server, an offline emulator from PyPI (LocalStack needs
# a newer Python and downloads DynamoDB Local at start, which fails offline),
# run by scripts/moto_server.py one request at a time (moto's multi-threaded
# server breaks TransactWriteItems' atomicity; see that script). It keeps
# data in memory only; the read-model tables are created from template.yaml
# by scripts/create_tables.py.
moto_version=5.2.5
moto_venv="$repo_dir/.local/moto-venv"
dynamodb_port=${DYNAMODB_PORT:-8000}
if ! "$moto_venv/bin/pip" show moto 2>/dev/null | grep -x "Version: ${moto_version}" >/dev/null; then
    say "installing moto $moto_version (DynamoDB emulator) into .local/moto-venv"
    python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install -q "moto[server]==${moto_version}"
fi
if ! port_open "$dynamodb_port"; then
    say "starting the DynamoDB emulator on 127.0.0.1:${dynamodb_port} (logs: .local/moto.log)"
    setsid nohup "$moto_venv/bin/python" "$repo_dir/scripts/moto_server.py" -H 127.0.0.1 -p "$dynamodb_port" \
        >>"$repo_dir/.local/moto.log" 2>&1 </dev/null &
    wait_for "the DynamoDB emulator" 60 port_open "$dynamodb_port"
fi
"$moto_venv/bin/python" "$repo_dir/scripts/create_tables.py" --endpoint "http://127.0.0.1:${dynamodb_port}"

# cargo-lambda, for `ledgerline serve` (it runs the functions under `cargo
# lambda watch`): the prebuilt release from PyPI, with zig, in seconds
# (`cargo install` takes over 10 minutes). `serve` finds it in this venv.
cargo_lambda_version=1.9.2
tools_venv="$repo_dir/.local/tools-venv"
if ! "$tools_venv/bin/pip" show cargo-lambda 2>/dev/null | grep -x "Version: ${cargo_lambda_version}" >/dev/null; then
    say "installing cargo-lambda ${cargo_lambda_version} into .local/tools-venv"
    [ -x "$tools_venv/bin/pip" ] || python3 -m venv "$tools_venv"
    "$tools_venv/bin/pip" install -q "cargo-lambda==${cargo_lambda_version}"
fi

if [ "${1:-}" = "--reset-broker" ]; then
    # What the broker lost is sent again: every event recorded in the last
    # 3 days is queued again from the event log (acknowledged rows leave the
    # outbox; events still in it are left as they are). The projector skips
    # what it already applied; the reconciler would repair the read side
    # anyway, this brings Kafka itself back.
    say "broker reset; sending again what it held: ledgerline outbox replay --since 3d"
    ledgerline_cli=("$repo_dir/target/debug/ledgerline")
    [ -x "${ledgerline_cli[0]}" ] || ledgerline_cli=(cargo run -q --manifest-path "$repo_dir/Cargo.toml" -p ledgerline --)
    export DATABASE_URL=${DATABASE_URL:-postgres://postgres:postgres@${pg_host}:${pg_port}/ledgerline}
    "${ledgerline_cli[@]}" migrate >/dev/null
    "${ledgerline_cli[@]}" outbox replay --since 3d
fi

# A broker can accept connections and answer metadata, yet take no produce
# requests (tansu 0.6.0 after a crash under load, docs/RELIABILITY.md): then
# the local stack's outbox rows stay pending. Say so, with the way out.
stuck=$(psql "postgres://postgres:postgres@${pg_host}:${pg_port}/ledgerline" -Atqc \
    "SELECT count(*) FROM outbox WHERE status = 'pending' AND created_at < now() - interval '2 minutes'" 2>/dev/null || echo 0)
if [ "${stuck:-0}" -gt 0 ]; then
    say "warning: ${stuck} outbox rows of the local stack have waited over 2 minutes (ledgerline outbox status);"
    say "if the broker takes no produce requests, reset it: scripts/services.sh --reset-broker"
fi
say "PostgreSQL on ${pg_host}:${pg_port}, Redis on 127.0.0.1:${redis_port}, Kafka (tansu) on 127.0.0.1:${kafka_port}, DynamoDB (moto) on 127.0.0.1:${dynamodb_port} are up"
