#!/usr/bin/env bash
# Brings up what Ledgerline's tests and local runs need, on Debian:
# PostgreSQL and Redis. Installs them with apt when missing, starts them when
# stopped, creates the databases. Safe to run twice; quick when all is up.
#
#   scripts/services.sh
#
# Environment: PGHOST_ADDR (127.0.0.1), PGPORT (5432), REDIS_PORT (6379).
set -euo pipefail

pg_host=${PGHOST_ADDR:-127.0.0.1}
pg_port=${PGPORT:-5432}
redis_port=${REDIS_PORT:-6379}
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

say "PostgreSQL on ${pg_host}:${pg_port} and Redis on 127.0.0.1:${redis_port} are up"
