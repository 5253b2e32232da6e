#!/usr/bin/env bash
# The README's test command: check formatting, start the services, lint the
# SAM template, then run every test.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p NAME    # extra arguments go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

# Formatting first: it needs no services and fails in a second.
cargo fmt --all --check
scripts/services.sh
scripts/lint-template.sh

export LEDGERLINE_TEST_DATABASE_URL=${LEDGERLINE_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/ledgerline_test}
export LEDGERLINE_TEST_DYNAMODB_ENDPOINT=${LEDGERLINE_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:8000}

if [ $# -eq 0 ]; then
    set -- --workspace
fi
cargo test --locked "$@"
