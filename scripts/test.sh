#!/usr/bin/env bash
# The test command of kvpq: installs what the tests need, then runs the workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust 1.80 or newer) is required: https://rustup.rs" >&2
    exit 1
fi

cargo test --workspace --locked
