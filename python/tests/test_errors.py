"""Every bad input raises a kvpq exception with the runtime's message (InputError is a
ValueError, DeviceError a RuntimeError) and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import kvpq
from conftest import HEADS, LAYERS, REPO, SMALL_TOML, make_keys, make_queries, new_index


def raises(kind: str, match: str, exc=kvpq.InputError):
    class Check:
        def __enter__(self):
            self.cm = pytest.raises(exc, match=match)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *a):
            handled = self.cm.__exit__(*a)
            assert self.info.value.kind == kind, self.info.value.kind
            return handled

    return Check()


def test_classes():
    assert issubclass(kvpq.InputError, ValueError) and issubclass(kvpq.InputError, kvpq.KvpqError)
    assert issubclass(kvpq.DeviceError, RuntimeError) and issubclass(kvpq.DeviceError, kvpq.KvpqError)
    assert issubclass(kvpq.DeviceUnavailableError, kvpq.DeviceError)


def test_non_finite_keys_and_queries(acc, rng, prefilled):
    index = new_index(acc, layers=1)
    keys = make_keys(rng, 300)
    bad = keys.copy()
    bad[1, 2, 3] = np.nan
    with raises("non_finite", r"prefill keys: element 9667 is NaN"):
        index.prefill(0, bad, keys)
    assert index.tokens(0) == 0, "nothing changed"
    bad[1, 2, 3] = np.inf
    with raises("non_finite", r"prefill values: element 9667 is inf"):
        index.prefill(0, keys, bad)
    index, _ = prefilled
    q = make_queries(rng)
    q[0, 0] = -np.inf
    with raises("non_finite", "queries: element 0 is -inf"):
        index.select(0, q)
    with raises("non_finite", "append keys"):
        index.append(0, bad[:, :4], bad[:, :4])
    assert index.tokens(0) == 600


def test_shapes(acc, rng, prefilled):
    index, _ = prefilled
    keys = make_keys(rng, 300, heads=3)
    with raises("shape", r"prefill keys: \(3, 300, 32\), expected \(2, tokens, 32\)"):
        index.prefill(0, keys, keys)
    with raises("shape", r"keys: shape \(300, 32\), expected 3 dimensions"):
        index.prefill(0, keys[0], keys[0])
    k = make_keys(rng, 300)
    with raises("shape", r"prefill values: \(2, 299, 32\), expected \(2, 300, 32\)"):
        index.prefill(0, k, k[:, 1:])
    with raises("shape", r"at least 16"):
        index.prefill(0, k[:, :15], k[:, :15])
    with raises("shape", r"queries: \(4, 31\), expected \(4, 32\)"):
        index.select(0, make_queries(rng)[:, 1:])
    with raises("shape", r"queries: shape \(32,\), expected 2 dimensions"):
        index.select(0, make_queries(rng)[0])
    assert index.tokens(0) == 600


def test_dtypes(acc, rng, prefilled):
    index, _ = prefilled
    k = make_keys(rng, 4)
    with raises("dtype", "keys: dtype float64 is not supported: pass float32, float16 or bfloat16"):
        index.append(0, k.astype(np.float64), k)
    with raises("dtype", r"values: dtype float16, expected float32 \(the keys' dtype\)"):
        index.append(0, k, k.astype(np.float16))
    with raises("dtype", "keys: dtype uint16 is not supported"):
        index.append(0, k.view(np.uint16)[..., ::2], k.view(np.uint16)[..., ::2])
    with pytest.raises(TypeError, match="keys: expected a numpy array or an object with __dlpack__"):
        index.append(0, k.tolist(), k)
    ids = index.select(0, make_queries(rng))
    with raises("dtype", r"ids: dtype float32, expected an integer type"):
        index.gather(0, ids.astype(np.float32))
    with raises("dtype", "dtype \"f64\": expected f32, f16 or bf16"):
        kvpq.Index(acc, 1, 1, dtype="f64")


def test_gather_buffers_name_what_was_given_and_what_is_expected(rng, prefilled):
    index, _ = prefilled
    ids = index.select(0, make_queries(rng))
    n = ids.shape[1]
    good = np.zeros((HEADS, n, 32), np.float32)
    with raises("dtype", rf"keys_out: dtype float16 and shape \(2, {n}, 32\), expected dtype float32 and shape \(2, {n}, 32\)"):
        index.gather(0, ids, good.astype(np.float16), good)
    with raises("shape", rf"values_out: dtype float32 and shape \(2, {n - 1}, 32\), expected dtype float32 and shape \(2, {n}, 32\)"):
        index.gather(0, ids, good, good[:, 1:])
    with raises("overlap", "share memory"):
        index.gather(0, ids, good, good)
    with raises("overlap", "map several elements to one address"):
        index.gather(0, ids, np.lib.stride_tricks.as_strided(good, strides=(0,) + good.strides[1:]), None)
    with raises("out_of_range", "selected token 600 is out of range"):
        index.gather(0, np.full((HEADS, 1), 600))
    with raises("out_of_range", "ids: element 1 is -1, not a token id"):
        index.gather(0, np.array([[0, -1], [0, 1]]))
    with raises("shape", r"selection: 3 heads, expected 2"):
        index.gather(0, np.zeros((3, 1), np.int64))


def test_ranges_and_state(acc, rng, prefilled):
    index, _ = prefilled
    q = make_queries(rng)
    with raises("out_of_range", rf"layer {LAYERS} is out of range \(there are {LAYERS}\)"):
        index.select(LAYERS, q)
    with raises("out_of_range", r"layer -1 is out of range"):
        index.tokens(-1)
    with raises("out_of_range", r"head 2 is out of range \(there are 2\)"):
        index.head_codes(0, 2)
    fresh = new_index(acc, layers=2)
    for call in (lambda: fresh.select(1, q), lambda: fresh.gather(1, np.zeros((2, 1), np.int64)),
                 lambda: fresh.append(1, make_keys(rng, 1), make_keys(rng, 1)),
                 lambda: fresh.wait_trained(1)):
        with raises("not_prefilled", "layer 1: select, append or gather before prefill"):
            call()


def test_budget_and_capacity(acc, rng, prefilled):
    index, _ = prefilled
    q = make_queries(rng)
    middle = acc.policy_split(600)["middle"]
    with raises("budget", rf"k = {middle + 1} exceeds the {middle} tokens between sinks and local window \(context of 600\)"):
        index.select(0, q, k=middle + 1)
    with raises("budget", "k = -1 is negative"):
        index.select(0, q, k=-1)
    small = new_index(acc, layers=1, capacity=100)
    k = make_keys(rng, 101)
    with raises("capacity", "layer 0: 101 tokens exceed the store's capacity of 100 per layer"):
        small.prefill(0, k, k)


def test_devices_and_options(acc):
    assert kvpq.backends()[:2] == ["cpu", "xrt"]
    with raises("device", "the xrt device opens a generated folder: pass path="):
        kvpq.Index(acc, 1, 1, device="xrt")
    with raises("mismatch", "pq.head_dim is 128 in the folder's manifest, but 32 was asked for"):
        kvpq.Index(acc, 1, 1, device="xrt", path=REPO / "tests" / "snapshots" / "pqcache-llama3")
    with raises("manifest", "cannot read"):
        kvpq.Index(acc, 1, 1, device="xrt", path="/nonexistent/folder")
    with raises("device", r"device option \"port\" is not one the xrt device reads \(kernel, library, device_index, xclbin\)"):
        kvpq.Index(acc, 1, 1, device="xrt", device_options={"port": "/dev/ttyUSB0"})
    with raises("device", r"xrt kernel \"vhdl\": expected \"rtl\" or \"hls\""):
        kvpq.Index(acc, 1, 1, device="xrt", device_options={"kernel": "vhdl"})
    if "board" not in kvpq.backends():
        with raises("unavailable", "board device unavailable: not built into this kvpq module", kvpq.DeviceUnavailableError):
            kvpq.Index(acc, 1, 1, device=["cpu", "board"])
    with raises("device", r"unknown device \"tpu\": expected one of cpu, xrt, gpu, board, sim"):
        kvpq.Index(acc, 1, 1, device="tpu")
    with raises("device", "the cpu device takes no path"):
        kvpq.Index(acc, 1, 1, path="/tmp")
    with raises("device", "device option \"threads\" is not one the cpu device reads"):
        kvpq.Index(acc, 1, 1, device_options={"threads": 2})
    with raises("sharding", "sharding \"rows\""):
        kvpq.Index(acc, 1, 1, sharding="rows")
    with raises("shape", r"index shape: 0 layers x 1 KV heads"):
        kvpq.Index(acc, 0, 1)
    with raises("shape", "devices: none"):
        kvpq.Index(acc, 1, 1, device=[])


def test_descriptions(tmp_path):
    with raises("config", r"scanner.lanes: invalid type"):
        kvpq.Accelerator(SMALL_TOML.replace("lanes = 8", 'lanes = "8"'))
    with raises("config", r"invalid accelerator description"):
        kvpq.Accelerator.from_toml(SMALL_TOML.replace("head_dim = 32", "head_dim = 33"))
    with raises("config", "cannot read config .*missing.toml"):
        kvpq.Accelerator(str(tmp_path / "missing.toml"))
    with pytest.raises(TypeError, match="config: expected an Accelerator, TOML text or a path"):
        kvpq.Accelerator(3)
