#!/usr/bin/env bash
# Tests the Python bindings (python/, the `kvpq` module): builds the abi3 wheel with maturin
# into the project venv .venv (with numpy, pytest, torch and transformers), installs it as a
# user would, and runs python/tests. Safe to run again; a rebuild after a change takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# maturin >= 1.9.4 builds the extension without linking libpython (PYO3_BUILD_EXTENSION_MODULE).
.venv/bin/pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" numpy pytest
# torch (used on the CPU) and Hugging Face transformers for test_torch.py and test_hf_llama.py
# (both skip without them). PyPI's Linux torch wheel pulls its CUDA libraries: about 5.6 GB
# and 1.5 minutes the first time (it does not import without them). Where PyTorch's CPU-only
# index is reachable, PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu picks its much
# smaller +cpu build instead. Re-runs skip what is installed (seconds).
# --no-cache-dir: the wheels (about 3 GB) are not kept twice on disk.
.venv/bin/pip install -q --disable-pip-version-check --no-cache-dir "torch>=2.6" "transformers>=5"

wheels=target/python-wheels
rm -rf "$wheels"
.venv/bin/maturin build --release --locked -m python/Cargo.toml -o "$wheels"
.venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/kvpq-*.whl

# The pytest entry point (not `python -m pytest`) keeps the source folder python/kvpq, which
# has no extension, off sys.path: the tests import the installed wheel.
.venv/bin/pytest -q python/tests
