#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md: the runtime's `gpu` device against PyTorch doing the same
# PQ scoring and torch.topk, on the same GPU and on the host's cores, one Llama-3-8B layer
# (8 KV heads) at 32K, 128K and 512K tokens. Writes JSON lines to OUT (default
# docs/peers-gpu.jsonl, which scripts/bench-peers.sh renders; it calls this script itself
# where a GPU is present).
#
#   bash scripts/bench-peers-gpu.sh [OUT]
#
# PEERS names a prebuilt `peers` binary (default: cargo builds it), PYTHON a Python with
# torch and numpy (default: .venv/bin/python, into which torch is installed if missing), for
# a GPU machine without cargo or a network.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/peers-gpu.jsonl}"

peers="${PEERS:-}"
if [ -z "$peers" ]; then
    cargo build --release --locked -p kvpq-peers
    peers=target/release/peers
fi
python="${PYTHON:-}"
if [ -z "$python" ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    python=.venv/bin/python
    if ! $python -c "import torch, numpy" 2>/dev/null; then
        .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir torch numpy
    fi
fi

work=target/peers/gpu
rm -rf "$work"
mkdir -p "$work"
rows="$work/rows.jsonl"
# Alternating rounds of both sides (the same generated data each time): a noisy machine
# slows both alike; the report takes each point's median over the rounds.
for _ in 1 2 3; do
    "$peers" gpu --out "$work"
    $python scripts/peers.py gpu --data "$work"
done > "$rows"
host="$(nproc) cores of $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# Each row carries its machine: the GPU's name is in the rows, the host's and date here.
$python - "$rows" "$host" "$(date -u +%Y-%m-%d)" > "$out" <<'EOF'
import json, sys
rows, host, day = sys.argv[1:]
for line in open(rows):
    if line.strip():
        r = json.loads(line)
        r.update(host=host, date=day)
        print(json.dumps(r))
EOF
echo "wrote $out"
