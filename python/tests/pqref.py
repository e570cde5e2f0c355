"""The PQ retrieval of kvpq's golden model (docs/design.md sections 2-4) in numpy, to check
the runtime's selections from the codebooks and codes it exposes (``Index.head_codes``).

Host arithmetic follows the golden model: f32 sums and divisions, round half away from zero,
saturation, exact integer LUTs with one floor shift, top-k by score then lower index.
"""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    x = x.astype(np.float32)
    limit = (1 << (bits - 1)) - 1
    scale = np.float32(np.max(np.abs(x)) / np.float32(limit))
    if scale == 0:
        scale = np.float32(1)
    y = (x / scale).astype(np.float32)
    # Half away from zero; exact in float64 for every float32.
    r = np.sign(y) * np.floor(np.abs(y).astype(np.float64) + 0.5)
    return np.clip(r, -limit - 1, limit).astype(np.int64)


def unpack_codes(beats: np.ndarray, layout: dict, n: int) -> np.ndarray:
    """Codes (n, m) of the first n tokens of packed beats."""
    m, b = layout["m"], layout["code_bits"]
    tpb, wpb = layout["tokens_per_beat"], layout["words_per_beat"]
    t = np.arange(n)
    beats = beats.astype(np.uint64)
    codes = np.empty((n, m), dtype=np.int64)
    for mi in range(m):
        pos = (t // tpb) * wpb * 64 + (t % tpb) * m * b + mi * b
        word, off = pos // 64, (pos % 64).astype(np.uint64)
        lo = beats[word] >> off
        nxt = beats[np.minimum(word + 1, len(beats) - 1)]
        hi = np.where(off > 0, nxt << ((np.uint64(64) - off) % np.uint64(64)), np.uint64(0))
        codes[:, mi] = ((lo | hi) & np.uint64((1 << b) - 1)).astype(np.int64)
    return codes


def select(acc, index, layer: int, queries: np.ndarray, k: int | None = None) -> np.ndarray:
    """What ``index.select(layer, queries, k)`` must return, recomputed in numpy."""
    cfg = acc.config
    g, qb, lb = cfg["retrieval"]["gqa_group"], cfg["quant"]["query_bits"], cfg["quant"]["lut_bits"]
    n = index.tokens(layer)
    split = acc.policy_split(n)
    sink, local, middle = split["sink"], split["local"], split["middle"]
    topk = split["topk"] if k is None else k
    rows = []
    for h in range(index.kv_heads):
        hc = index.head_codes(layer, h)
        # GQA: the group's queries summed in order, in float32.
        s = np.zeros(queries.shape[1], dtype=np.float32)
        for j in range(g):
            s = (s + queries[h * g + j]).astype(np.float32)
        q = quantize(s, qb)
        cent = hc.quant_centroids.astype(np.int64)
        m, _, sub = cent.shape
        acc_ = np.einsum("mkj,mj->mk", cent, q.reshape(m, sub))
        shift = max(0, int(np.abs(acc_).max()).bit_length() - (lb - 1))
        lut = acc_ >> shift
        codes = unpack_codes(hc.beats, acc.layout, middle)
        scores = lut[np.arange(m), codes].sum(axis=1)
        order = np.lexsort((np.arange(middle), -scores))[:topk]
        ids = np.concatenate(
            [np.arange(sink), np.sort(order) + sink, np.arange(n - local, n)]
        )
        rows.append(ids)
    return np.stack(rows).astype(np.int64)
