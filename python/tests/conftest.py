"""Shared fixtures: a small accelerator (fast training, several beats of codes), keys with
cluster structure (so PQ scores rarely tie) and a prefilled index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kvpq

REPO = Path(__file__).resolve().parents[2]

# D = 32 in M = 2 subspaces of 4-bit codes: 8 tokens per 64-bit beat.
SMALL_TOML = """
name = "py-test"

[pq]
head_dim = 32
m = 2
code_bits = 4

[quant]
query_bits = 8
centroid_bits = 8
lut_bits = 16

[dist_unit]
macs = 16

[scanner]
lanes = 8

[topk]
strategy = "select"
k_max = 1024

[engine]
max_tokens = 4096
beat_bits = 64

[retrieval]
gqa_group = 2
sink_tokens = 8
budget = 0.2
local_fraction = 0.5
"""

HEADS = 2
LAYERS = 3
D = 32
G = 2


def make_keys(rng: np.random.Generator, tokens: int, heads: int = HEADS, d: int = D):
    """(heads, tokens, d) float32 keys around 24 centers per head, plus noise."""
    centers = rng.standard_normal((heads, 24, d)).astype(np.float32) * 2
    which = rng.integers(0, 24, size=(heads, tokens))
    noise = rng.standard_normal((heads, tokens, d)).astype(np.float32) * 0.3
    return np.take_along_axis(centers, which[:, :, None], 1) + noise


def make_queries(rng: np.random.Generator, heads: int = HEADS, g: int = G, d: int = D):
    return rng.standard_normal((heads * g, d)).astype(np.float32)


@pytest.fixture
def acc() -> kvpq.Accelerator:
    return kvpq.Accelerator.from_toml(SMALL_TOML)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def new_index(acc, dtype="f32", layers=LAYERS, **kw) -> kvpq.Index:
    # One training thread: the tests share two cores with other work.
    kw.setdefault("training", kvpq.Training(threads=1, seed=7))
    return kvpq.Index(acc, layers, HEADS, dtype=dtype, **kw)


@pytest.fixture
def prefilled(acc, rng):
    """An f32 index whose every layer holds 600 tokens; also returns the keys and values."""
    index = new_index(acc)
    kv = []
    for layer in range(LAYERS):
        k, v = make_keys(rng, 600), make_keys(rng, 600)
        index.prefill(layer, k, v)
        kv.append((k, v))
    return index, kv
