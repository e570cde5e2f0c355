#!/usr/bin/env bash
# The test command of kvpq: installs the tools the tests drive, then runs the workspace tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace --locked --no-fail-fast
# The Python bindings: build the wheel into .venv and run their pytest suite.
bash scripts/python-test.sh
