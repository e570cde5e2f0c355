#!/usr/bin/env bash
# The main job of kvpq for the default configuration (examples/pqcache-llama3.toml):
# validate it and print its derived view, run the bit-exact golden model on clustered keys,
# generate the Verilog, lint and synthesize it (Verilator, Yosys) and simulate it with
# Verilator against the golden model.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-examples/pqcache-llama3.toml}"
out="${2:-out/$(basename "$config" .toml)}"

bash scripts/setup.sh
cargo build --release --locked -p hwgen-cli
hwgen=./target/release/hwgen
$hwgen check "$config"
$hwgen golden "$config"
$hwgen generate "$config" -o "$out"
$hwgen lint "$config" -o "$out" --keep-memories
$hwgen sim "$config" --tokens 32768
