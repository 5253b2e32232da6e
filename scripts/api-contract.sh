#!/usr/bin/env bash
# Fuzzes the HTTP API against its contract, docs/openapi.json, with
# schemathesis: every phase (examples, coverage, fuzzing, stateful: the
# document's links open accounts, then move money on them) and every check,
# against `ledgerline serve --embedded` on a free loopback port, behind the
# same gateway (HS256 tokens) as locally. Exits non-zero on any finding.
#
#   scripts/api-contract.sh                    # from scripts/test.sh, after the services
#   API_CONTRACT_EXAMPLES=400 scripts/api-contract.sh   # more cases per operation
#   API_CONTRACT_SEED=7 scripts/api-contract.sh          # other cases (the default seed is fixed)
#   scripts/api-contract.sh --report har       # extra arguments go to `st run`
#
# schemathesis comes from PyPI into .local/tools-venv (created by
# scripts/services.sh); its settings are in scripts/schemathesis.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis_version=4.32.5
venv=.local/tools-venv
examples=${API_CONTRACT_EXAMPLES:-150}
say() { printf 'api-contract: %s\n' "$*"; }

if ! "$venv/bin/pip" show schemathesis 2>/dev/null | grep -x "Version: ${schemathesis_version}" >/dev/null; then
    say "installing schemathesis ${schemathesis_version} into ${venv}"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==${schemathesis_version}"
fi

cargo build --locked -q -p ledgerline
cli=target/debug/ledgerline

# A server of its own: in memory, a fresh secret, port 0 (the kernel picks a
# free one; the server prints it), and no open-account limit in the way of
# thousands of generated accounts (the limit itself is tested in Rust).
work=$(mktemp -d)
export LEDGERLINE_JWT_SECRET="api-contract-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export LEDGERLINE_MAX_OPEN_ACCOUNTS=1000000
export RUST_LOG=${RUST_LOG:-warn}
LEDGERLINE_HTTP_ADDR=127.0.0.1:0 "$cli" serve --embedded >"$work/serve.log" 2>&1 &
server=$!
stop() {
    kill -INT "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap stop EXIT

deadline=$((SECONDS + 60))
url=
while [ -z "$url" ]; do
    url=$(grep -o -m1 'serving on http://127\.0\.0\.1:[0-9]*' "$work/serve.log" | sed 's/serving on //' || true)
    if [ -z "$url" ]; then
        if ! kill -0 "$server" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            say "the server did not start:"; cat "$work/serve.log"; exit 1
        fi
        sleep 0.1
    fi
done

# An administrator: freeze and unfreeze succeed, overdraft limits are granted.
API_CONTRACT_TOKEN=$("$cli" token --sub api-contract --admin --ttl 2h)
export API_CONTRACT_TOKEN
say "schemathesis ${schemathesis_version} against ${url} (${examples} cases per operation and phase)"
started=$SECONDS
status=0
# One worker: the Python 3.11 here trips over a CPython bug (ast.parse from
# several threads: "AST constructor recursion depth mismatch") with more.
PYTHONPATH=scripts "$venv/bin/st" --config-file scripts/schemathesis.toml run docs/openapi.json \
    --url "$url" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$examples" \
    --workers 1 \
    --seed "${API_CONTRACT_SEED:-20261130}" "$@" || status=$?
say "schemathesis exited ${status} after $((SECONDS - started)) s"
if [ "$status" -ne 0 ] && grep -qE 'ERROR|panicked' "$work/serve.log"; then
    say "the server logged:"; grep -E 'ERROR|panicked' "$work/serve.log" | tail -20
fi
exit "$status"
