#!/usr/bin/env bash
# Tests the Python bindings (python/, the `kvpq` module): builds the abi3 wheel with maturin
# into the project venv .venv (with numpy and pytest), installs it as a user would, and runs
# python/tests. Safe to run again; a rebuild after a change takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# maturin >= 1.9.4 builds the extension without linking libpython (PYO3_BUILD_EXTENSION_MODULE).
.venv/bin/pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" numpy pytest

wheels=target/python-wheels
rm -rf "$wheels"
.venv/bin/maturin build --release --locked -m python/Cargo.toml -o "$wheels"
.venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/kvpq-*.whl

# The pytest entry point (not `python -m pytest`) keeps the source folder python/kvpq, which
# has no extension, off sys.path: the tests import the installed wheel.
.venv/bin/pytest -q python/tests
