#!/usr/bin/env bash
# The main job of kvpq for the default configuration (examples/pqcache-llama3.toml):
# validate it and print its derived view, run the bit-exact golden model on clustered keys,
# generate the Verilog, lint and synthesize it (Verilator, Yosys), simulate it with
# Verilator against the golden model, and build an ECP5 bitstream (Yosys, nextpnr-ecp5,
# ecppack) for the ULX3S, printing its report. The full engine does not fit an ECP5-85k, so
# the bitstream is built for its board-sized version, examples/pqcache-ulx3s.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-examples/pqcache-llama3.toml}"
out="${2:-out/$(basename "$config" .toml)}"
board_config="${3:-examples/pqcache-ulx3s.toml}"

bash scripts/setup.sh
cargo build --release --locked -p hwgen-cli
hwgen=./target/release/hwgen
$hwgen check "$config"
$hwgen golden "$config"
$hwgen generate "$config" -o "$out"
$hwgen lint "$config" -o "$out" --keep-memories
$hwgen sim "$config" --tokens 32768
$hwgen build "$board_config" --target ecp5 -o bitstreams
# A short retrieval run through the runtime: prefill, select, gather and append on the CPU
# device and on the Verilator model of the folder's RTL, checking that they agree.
cargo run --release --locked -p kvpq-runtime --features sim --example retrieve -- \
    "$config" --folder "$out" --devices cpu,sim
