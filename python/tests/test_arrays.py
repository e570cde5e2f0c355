"""Arrays in and out without copies: gather writes caller buffers in place (numpy and
DLPack, contiguous and strided), DLPack inputs (numpy behind __dlpack__, a ctypes producer
of bfloat16) give numpy's answers, half-precision stores round like numpy, and the capsules
are released."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import kvpq
from conftest import HEADS, make_keys, make_queries, new_index
from dlpack_producer import BFLOAT, CUDA, FLOAT32, Producer, ViaDLPack, bf16_bits, bf16_to_f32


def expected_rows(x, ids):
    return np.take_along_axis(x, ids[:, :, None], 1)


def test_gather_writes_preallocated_numpy_buffers_in_place(rng, prefilled):
    index, kv = prefilled
    ids = index.select(0, make_queries(rng))
    shape = ids.shape + (index.head_dim,)
    k_out, v_out = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    k_ret, v_ret = index.gather(0, ids, k_out, v_out)
    assert k_ret is k_out and v_ret is v_out
    np.testing.assert_array_equal(k_out, expected_rows(kv[0][0], ids))
    np.testing.assert_array_equal(v_out, expected_rows(kv[0][1], ids))


def test_gather_into_strided_views_of_a_larger_buffer(rng, prefilled):
    index, kv = prefilled
    ids = index.select(2, make_queries(rng))
    n = ids.shape[1]
    # A per-layer cache sized for more tokens, filled through slices; values reversed.
    cache = np.zeros((2, HEADS, n + 10, index.head_dim), np.float32)
    index.gather(2, ids, cache[0, :, :n], cache[1, :, ::-1][:, :n])
    np.testing.assert_array_equal(cache[0, :, :n], expected_rows(kv[2][0], ids))
    np.testing.assert_array_equal(cache[1, :, ::-1][:, :n], expected_rows(kv[2][1], ids))
    assert (cache[0, :, n:] == 0).all() and (cache[1, :, :10] == 0).all()


def test_gather_takes_any_integer_ids_in_any_order(rng, prefilled):
    index, kv = prefilled
    ids = np.array([[5, 599, 3], [0, 0, 17]], dtype=np.int32)
    keys, _ = index.gather(1, ids)
    np.testing.assert_array_equal(keys, expected_rows(kv[1][0], ids.astype(np.int64)))
    keys, _ = index.gather(1, ids.astype(np.uint32).T.copy().T)  # Fortran order
    np.testing.assert_array_equal(keys, expected_rows(kv[1][0], ids.astype(np.int64)))


def test_numpy_through_dlpack_reads_and_writes_the_same_memory(acc, rng):
    index = new_index(acc, layers=1)
    keys, values = make_keys(rng, 300), make_keys(rng, 300)
    index.prefill(0, ViaDLPack(keys), ViaDLPack(values))
    q = make_queries(rng)
    ids = index.select(0, ViaDLPack(q))
    ref = new_index(acc, layers=1)
    ref.prefill(0, keys, values)
    np.testing.assert_array_equal(ids, ref.select(0, q))
    out = np.zeros(ids.shape + (index.head_dim,), np.float32)
    index.gather(0, ViaDLPack(ids), ViaDLPack(out), np.zeros_like(out))
    np.testing.assert_array_equal(out, expected_rows(keys, ids))


def test_inputs_may_be_strided_or_reversed(acc, rng):
    keys = make_keys(rng, 600)
    a, b = new_index(acc, layers=1), new_index(acc, layers=1)
    a.prefill(0, keys[:, ::2], keys[:, ::2])
    b.prefill(0, np.ascontiguousarray(keys[:, ::2]), np.ascontiguousarray(keys[:, ::2]))
    q = make_queries(rng)
    np.testing.assert_array_equal(a.select(0, q[::-1][::-1]), b.select(0, q))
    np.testing.assert_array_equal(a.select(0, np.asfortranarray(q)), b.select(0, q))


@pytest.mark.parametrize("versioned", [True, False])
def test_bfloat16_through_dlpack(acc, rng, versioned):
    index = new_index(acc, dtype="bf16", layers=1)
    keys, values = make_keys(rng, 300), make_keys(rng, 300)
    kb, vb = bf16_bits(keys), bf16_bits(values)
    kp, vp = Producer(kb, versioned=versioned), Producer(vb, versioned=versioned)
    index.prefill(0, kp, vp)
    assert kp.exports == 1 and vp.exports == 1
    # bfloat16 queries are widened exactly: the same answer as their float32 value.
    q = bf16_bits(make_queries(rng))
    ids = index.select(0, Producer(q, versioned=versioned))
    np.testing.assert_array_equal(ids, index.select(0, bf16_to_f32(q)))
    out = np.zeros(ids.shape + (index.head_dim,), np.uint16)
    k_ret, _ = index.gather(0, ids, Producer(out, versioned=versioned), None)
    np.testing.assert_array_equal(out, expected_rows(kb, ids))
    assert isinstance(k_ret, Producer)


def test_bfloat16_from_numpy_uint16_bits_and_from_float32(acc, rng):
    keys = make_keys(rng, 300)
    a, b = new_index(acc, dtype="bf16", layers=1), new_index(acc, dtype="bf16", layers=1)
    a.prefill(0, bf16_bits(keys), bf16_bits(keys))
    b.prefill(0, keys, keys)  # rounded by the store
    ids = a.select(0, make_queries(rng))
    ka, _ = a.gather(0, ids)
    kb, _ = b.gather(0, ids)
    assert ka.dtype == np.uint16
    np.testing.assert_array_equal(ka, kb)
    np.testing.assert_array_equal(ka, expected_rows(bf16_bits(keys), ids))


def test_ml_dtypes_bfloat16_numpy_arrays(acc, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    keys = make_keys(rng, 300)
    a, b = new_index(acc, dtype="bf16", layers=1), new_index(acc, dtype="bf16", layers=1)
    a.prefill(0, keys.astype(ml_dtypes.bfloat16), keys.astype(ml_dtypes.bfloat16))
    b.prefill(0, keys, keys)
    ids = a.select(0, make_queries(rng))
    out = np.zeros(ids.shape + (a.head_dim,), ml_dtypes.bfloat16)
    a.gather(0, ids, out)
    np.testing.assert_array_equal(out.view(np.uint16), b.gather(0, ids)[0])


def test_float16_store_rounds_like_numpy(acc, rng):
    index = new_index(acc, dtype=np.float16, layers=1)
    keys = make_keys(rng, 300)
    index.prefill(0, keys, keys)
    ids = index.select(0, make_queries(rng))
    k, v = index.gather(0, ids)
    assert index.dtype == "f16" and k.dtype == np.float16
    np.testing.assert_array_equal(k, expected_rows(keys.astype(np.float16), ids))


def test_versioned_read_only_tensors_are_read_but_not_written(acc, rng):
    index = new_index(acc, layers=1)
    keys = make_keys(rng, 300)
    index.prefill(0, Producer(keys, FLOAT32, read_only=True), Producer(keys, FLOAT32, null_strides=True))
    ids = index.select(0, make_queries(rng))
    out = np.zeros(ids.shape + (index.head_dim,), np.float32)
    with pytest.raises(kvpq.InputError, match="keys_out: the buffer is read-only"):
        index.gather(0, ids, Producer(out, FLOAT32, read_only=True))
    frozen = out.copy()
    frozen.flags.writeable = False
    with pytest.raises(kvpq.InputError, match="read-only") as e:
        index.gather(0, ids, None, frozen)
    assert e.value.kind == "readonly"


def test_device_memory_is_refused(acc, rng):
    index = new_index(acc, layers=1)
    keys = make_keys(rng, 300)
    with pytest.raises(kvpq.InputError, match="device type 2") as e:
        index.prefill(0, Producer(keys, FLOAT32, device=CUDA), keys)
    assert e.value.kind == "device"


def test_capsules_are_released(acc, rng):
    index = new_index(acc, layers=1)
    base = make_keys(rng, 300)
    alive = weakref.ref(base)
    index.prefill(0, ViaDLPack(base), ViaDLPack(base))
    del base
    gc.collect()
    # numpy's DLPack deleter drops its reference to the array when the capsule is freed.
    assert alive() is None
