#!/usr/bin/env bash
# The test command of kvpq: installs the tools the tests drive, then runs the workspace tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The workspace builds the runtime's `cuda` feature (examples/decode_loop uses it), so its
# GPU tests run here too: without a GPU they check that opening one is refused cleanly (on
# the GPU machine they run the kernels against the golden model; docs/gpu.md).
cargo test --workspace --locked --no-fail-fast
# The Python bindings: build the wheel into .venv and run their pytest suite.
bash scripts/python-test.sh
