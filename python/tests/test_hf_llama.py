"""kvpq attention in a Hugging Face Llama (python/examples/hf_llama.py): with a budget of
100 % it is transformers' dense eager attention bit for bit, over the prefill and decoding
steps; with 10 % every step attends the policy's split. Skipped without torch or
transformers."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

import kvpq
from conftest import REPO

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(REPO / "python" / "examples"))
import hf_llama  # noqa: E402

STEPS = 6


def run(budget: float, prompt_tokens: int, dense_model=None):
    model = hf_llama.tiny_llama(seed=3)
    acc = hf_llama.accelerator(model, budget)
    c = model.config
    # One training thread: the tests share two cores with other work.
    index = kvpq.Index(acc, c.num_hidden_layers, c.num_key_value_heads,
                       training=kvpq.Training(threads=1, seed=7))
    prompt = torch.randint(c.vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(5))
    dense = dense_model(model) if dense_model else None
    steps = hf_llama.generate(model, index, prompt, STEPS, dense_model=dense)
    assert [s.tokens for s in steps] == list(range(prompt_tokens, prompt_tokens + STEPS + 1))
    assert all(index.tokens(layer) == prompt_tokens + STEPS for layer in range(c.num_hidden_layers))
    # The prefill attends densely; every decoding step went through the index in every layer.
    assert steps[0].selected == {}
    assert all(sorted(s.selected) == list(range(c.num_hidden_layers)) for s in steps[1:])
    return acc, c, steps


def stock_eager(model):
    """The same weights with transformers' own eager attention."""
    dense = copy.deepcopy(model)
    dense.set_attn_implementation("eager")
    assert dense.config._attn_implementation == "eager"
    return dense


def test_budget_100_percent_is_dense_eager_attention_bit_for_bit():
    # Exact, not close: both run transformers' eager_attention_forward on equal inputs of the
    # same shape (the index stores float32 keys and values as given, select returns every
    # row in order, repeat_kv copies them into fresh tensors either way); dense decoding only
    # adds a causal mask of zeros, and x + 0.0 == x.
    acc, c, steps = run(1.0, prompt_tokens=80, dense_model=stock_eager)
    for s in steps:
        assert torch.equal(s.logits, s.dense_logits), f"{s.tokens} tokens"
        # Every KV head attends every token, in order: the same rows as dense attention.
        split = acc.policy_split(s.tokens)
        assert split["sink"] + split["topk"] + split["local"] == s.tokens
        for ids in s.selected.values():
            assert np.array_equal(ids, np.tile(np.arange(s.tokens), (c.num_key_value_heads, 1)))


def test_budget_10_percent_attends_the_policy_split():
    acc, c, steps = run(0.1, prompt_tokens=200)
    for s in steps:
        assert torch.isfinite(s.logits).all()
    for s in steps[1:]:
        split = acc.policy_split(s.tokens)
        sink, local = split["sink"], split["local"]
        n = sink + split["topk"] + local
        assert split["topk"] > 0 and n < 0.15 * s.tokens
        for ids in s.selected.values():
            assert ids.shape == (c.num_key_value_heads, n)
            assert (np.diff(ids, axis=1) > 0).all()
            assert (ids[:, :sink] == np.arange(sink)).all()
            assert (ids[:, n - local:] == np.arange(s.tokens - local, s.tokens)).all()
    # Sparse attention changes the logits (a random model attends almost uniformly).
    assert not torch.equal(steps[-1].logits, steps[-1].dense_logits)
