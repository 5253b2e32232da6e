#!/usr/bin/env bash
# Builds the five functions the way SAM's rust-cargolambda build method
# does (`cargo lambda build --release`, here for x86_64), prints each
# binary's size and fails if one is 10 MB (10,000,000 bytes) or more.
#
#   scripts/build-lambdas.sh
#
# The binaries land in target/lambda/<function>/bootstrap. arm64 (the
# template's architecture) needs the aarch64-unknown-linux-gnu Rust target,
# which `rustup target add` cannot fetch without the internet; where it is
# installed, `cargo lambda build --release --arm64` builds the same way.
# cargo-lambda comes from scripts/services.sh (.local/tools-venv), with zig
# as its linker, so the binaries run on Lambda's older glibc.
set -euo pipefail
cd "$(dirname "$0")/.."

functions=(command-api outbox-publisher projector query-api reconciler)
limit_bytes=10000000

if [ ! -x .local/tools-venv/bin/cargo-lambda ]; then
    scripts/services.sh
fi
export PATH="$PWD/.local/tools-venv/bin:$PATH"

packages=()
for function in "${functions[@]}"; do packages+=(--package "$function"); done
cargo lambda build --release --locked "${packages[@]}"

status=0
printf 'build-lambdas: %-18s %10s\n' function bytes
for function in "${functions[@]}"; do
    binary="target/lambda/$function/bootstrap"
    size=$(stat -c %s "$binary")
    verdict=ok
    if [ "$size" -ge "$limit_bytes" ]; then verdict="over the 10 MB limit"; status=1; fi
    printf 'build-lambdas: %-18s %10d  %s\n' "$function" "$size" "$verdict"
done
exit "$status"
