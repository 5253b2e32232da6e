#!/usr/bin/env bash
# The README's test command: check formatting and lints (clippy), start the
# services, lint the SAM template, run every test, then (on a full run)
# fuzz the HTTP API against docs/openapi.json with schemathesis
# (scripts/api-contract.sh) and build the functions as SAM does and check
# their sizes.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p NAME    # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

# Formatting and lints first: they need no services and fail early.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/services.sh
scripts/lint-template.sh

export LEDGERLINE_TEST_DATABASE_URL=${LEDGERLINE_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test}
export LEDGERLINE_TEST_DYNAMODB_ENDPOINT=${LEDGERLINE_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:8000}

full_run=false
if [ $# -eq 0 ]; then
    full_run=true
    set -- --workspace
fi
cargo test --locked "$@"

if [ "$full_run" = true ]; then
    scripts/api-contract.sh
    scripts/build-lambdas.sh
fi
