"""torch CPU tensors through DLPack, without copies: bfloat16 keys and values, int64 ids
that torch indexing takes, gathers written into torch tensors. Skipped without torch."""

from __future__ import annotations

import numpy as np
import pytest

import kvpq
from conftest import HEADS, make_keys, make_queries, new_index

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_decode_step_in_torch(acc, rng, dtype):
    index = new_index(acc, dtype=dtype, layers=1)
    keys = torch.from_numpy(make_keys(rng, 300)).to(dtype)
    values = torch.from_numpy(make_keys(rng, 300)).to(dtype)
    index.prefill(0, keys, values)
    q = torch.from_numpy(make_queries(rng)).to(dtype)
    ids = torch.from_numpy(index.select(0, q))
    assert ids.dtype == torch.int64
    expected_k = keys.gather(1, ids[:, :, None].expand(-1, -1, index.head_dim))
    k_out = torch.empty_like(expected_k)
    v_out = torch.empty_like(expected_k)
    index.gather(0, ids, k_out, v_out)
    assert torch.equal(k_out, expected_k)
    assert torch.equal(v_out, torch.stack([values[h].index_select(0, ids[h]) for h in range(HEADS)]))
    # Allocated outputs: numpy, bfloat16 as uint16 bits that torch views back.
    k_np, _ = index.gather(0, ids.numpy())
    back = torch.from_numpy(k_np)
    if dtype == torch.bfloat16:
        back = back.view(torch.bfloat16)
    assert torch.equal(back, expected_k)


def test_torch_views_and_strided_outputs(acc, rng):
    index = new_index(acc, dtype="bf16", layers=1)
    keys = torch.from_numpy(make_keys(rng, 600)).to(torch.bfloat16)
    index.prefill(0, keys[:, ::2], keys[:, 1::2])
    ids = torch.from_numpy(index.select(0, make_queries(rng)))
    cache = torch.zeros(HEADS, ids.shape[1] + 4, index.head_dim, dtype=torch.bfloat16)
    index.gather(0, ids, cache[:, 4:], None)
    assert torch.equal(cache[:, 4:], keys[:, ::2].gather(1, ids[:, :, None].expand(-1, -1, index.head_dim)))
    with pytest.raises(kvpq.InputError, match="keys_out: dtype float32 and shape"):
        index.gather(0, ids, cache.float()[:, 4:])


def test_meta_or_device_tensors_are_refused(acc, rng):
    index = new_index(acc, layers=1)
    with pytest.raises((kvpq.InputError, BufferError, RuntimeError, TypeError)):
        index.prefill(0, torch.empty(HEADS, 300, 32, device="meta"), torch.empty(HEADS, 300, 32, device="meta"))
