"""Round trips through the index against numpy: every selection equals the golden model's
retrieval recomputed from the index's own codebooks and codes, follows the policy's counts,
and gathers the rows indexing the keys gives; appends, explicit k, several devices and
threads agree."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

import kvpq
import pqref
from conftest import HEADS, LAYERS, REPO, make_keys, make_queries, new_index


def check_policy(acc, ids: np.ndarray, tokens: int, k: int | None = None):
    split = acc.policy_split(tokens)
    topk = split["topk"] if k is None else k
    assert ids.dtype == np.int64
    assert ids.shape == (HEADS, split["sink"] + topk + split["local"])
    assert (np.diff(ids, axis=1) > 0).all(), "each row ascending, no repeats"
    for row in ids:
        assert (row[: split["sink"]] == np.arange(split["sink"])).all()
        assert (row[len(row) - split["local"]:] == np.arange(tokens - split["local"], tokens)).all()


def test_selection_equals_the_numpy_golden_model(acc, rng, prefilled):
    index, kv = prefilled
    for layer in range(LAYERS):
        q = make_queries(rng)
        ids = index.select(layer, q)
        check_policy(acc, ids, 600)
        np.testing.assert_array_equal(ids, pqref.select(acc, index, layer, q))


def test_gather_equals_indexing_the_keys(rng, prefilled):
    index, kv = prefilled
    ids = index.select(1, make_queries(rng))
    keys, values = index.gather(1, ids)
    assert keys.dtype == np.float32 and keys.shape == ids.shape + (index.head_dim,)
    np.testing.assert_array_equal(keys, np.take_along_axis(kv[1][0], ids[:, :, None], 1))
    np.testing.assert_array_equal(values, np.take_along_axis(kv[1][1], ids[:, :, None], 1))


def test_decode_steps_with_appends_and_explicit_k(acc, rng, prefilled):
    index, kv = prefilled
    keys, values = kv[0]
    for step in range(4):
        k, v = make_keys(rng, 3), make_keys(rng, 3)
        index.append(0, k, v)
        keys, values = np.concatenate([keys, k], 1), np.concatenate([values, v], 1)
        assert index.tokens(0) == keys.shape[1]
        q = make_queries(rng)
        ids = index.select(0, q)
        check_policy(acc, ids, keys.shape[1])
        np.testing.assert_array_equal(ids, pqref.select(acc, index, 0, q))
        got = index.gather(0, ids)[0]
        np.testing.assert_array_equal(got, np.take_along_axis(keys, ids[:, :, None], 1))
    ids = index.select(0, q, k=5)
    check_policy(acc, ids, keys.shape[1], k=5)
    np.testing.assert_array_equal(ids, pqref.select(acc, index, 0, q, k=5))
    assert index.select(0, q, k=0).shape[1] == acc.policy_split(keys.shape[1])["sink"] + acc.policy_split(keys.shape[1])["local"]


def test_retraining_keeps_selections_exact(acc, rng):
    index = new_index(acc, layers=1, retrain_every=8)
    keys = make_keys(rng, 300)
    index.prefill(0, keys, keys)
    for _ in range(3):
        k = make_keys(rng, 5)
        index.append(0, k, k)
        index.wait_trained(0)
        q = make_queries(rng)
        np.testing.assert_array_equal(index.select(0, q), pqref.select(acc, index, 0, q))


def test_queries_in_half_precision_are_widened(acc, rng, prefilled):
    index, _ = prefilled
    q = make_queries(rng).astype(np.float16)
    np.testing.assert_array_equal(index.select(2, q), index.select(2, q.astype(np.float32)))


def test_several_devices_and_sharding_agree(acc, rng):
    keys = [make_keys(rng, 400) for _ in range(LAYERS)]
    qs = [make_queries(rng) for _ in range(LAYERS)]
    answers = []
    for kw in [{}, {"device": ["cpu", "cpu"]}, {"device": ["cpu", "cpu"], "sharding": "heads"}]:
        index = new_index(acc, **kw)
        for layer in range(LAYERS):
            index.prefill(layer, keys[layer], keys[layer])
        answers.append([index.select(layer, qs[layer]) for layer in range(LAYERS)])
        assert index.devices == ["cpu"] * len(kw.get("device", ["cpu"]))
    for other in answers[1:]:
        for a, b in zip(answers[0], other):
            np.testing.assert_array_equal(a, b)


def test_threads_on_different_layers_get_one_threads_answers(acc, rng, prefilled):
    index, _ = prefilled
    qs = [[make_queries(rng) for _ in range(6)] for _ in range(LAYERS)]
    expected = [[index.select(layer, q) for q in qs[layer]] for layer in range(LAYERS)]
    got = [None] * LAYERS
    errors = []

    def run(layer):
        try:
            out = []
            for q in qs[layer]:
                ids = index.select(layer, q)
                index.gather(layer, ids)
                out.append(ids)
            got[layer] = out
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(layer,)) for layer in range(LAYERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for layer in range(LAYERS):
        for a, b in zip(expected[layer], got[layer]):
            np.testing.assert_array_equal(a, b)


def test_training_is_seeded(acc, rng):
    keys = make_keys(rng, 300)
    codes = []
    for _ in range(2):
        index = new_index(acc, layers=1)
        index.prefill(0, keys, keys)
        codes.append(index.head_codes(0, 1))
    a, b = codes
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.beats, b.beats)
    assert a.stream_tokens == 300 - 8 and a.beats.dtype == np.uint64
    assert a.quant_centroids.shape == (2, 16, 16) and a.quant_centroids.dtype == np.int32


def test_properties_and_the_example_description(rng):
    index = kvpq.Index(REPO / "examples" / "pqcache-llama3.toml", 2, 8, dtype="bf16",
                       capacity=2048, training=kvpq.Training(threads=1))
    assert (index.layers, index.kv_heads, index.q_heads, index.head_dim) == (2, 8, 32, 128)
    assert index.dtype == "bf16" and index.capacity == 2048 and index.devices == ["cpu"]
    assert index.accelerator.name == "pqcache-llama3"
    assert index.tokens(0) == 0
    assert "pqcache-llama3" in repr(index)


def test_select_releases_the_gil(acc, rng):
    index = new_index(acc, layers=1)
    keys = make_keys(rng, 4000)
    index.prefill(0, keys, keys)
    index.wait_trained(0)
    q = make_queries(rng)
    done, calls = [], 300
    started = threading.Event()

    def work():
        started.set()
        for _ in range(calls):
            index.select(0, q)
            done.append(1)

    # With forced switches off, this thread runs while the worker is inside a call only if
    # the call released the GIL.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000)
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        seen = set()
        while t.is_alive():
            seen.add(len(done))
            time.sleep(0.0001)
        t.join()
    finally:
        sys.setswitchinterval(interval)
    assert seen - {0, calls}, seen
