#!/usr/bin/env bash
# The main job of kvpq for the default configuration (examples/pqcache-llama3.toml):
# validate it, print its derived widths and cycle model, and run the bit-exact golden model.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-examples/pqcache-llama3.toml}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust 1.80 or newer) is required: https://rustup.rs" >&2
    exit 1
fi

cargo build --release --locked -p hwgen-cli
./target/release/hwgen check "$config"
./target/release/hwgen golden "$config"
