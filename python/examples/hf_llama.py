"""kvpq retrieval inside a Hugging Face Llama, through transformers' attention interface.

A tiny randomly initialized ``LlamaForCausalLM`` (no weights are downloaded) runs with
``attn_implementation="kvpq"``, an attention function registered with
``transformers.AttentionInterface``. transformers calls it in every layer after RoPE and the
cache update, as ``fn(module, query, key, value, attention_mask, scaling, dropout, **kwargs)``
with ``query`` ``(batch, heads, q_len, head_dim)`` and ``key``/``value``
``(batch, kv_heads, kv_len, head_dim)``: the post-RoPE keys of the whole context, the
model's ``DynamicCache`` included. It returns ``(output (batch, q_len, heads, head_dim),
weights)``. The function:

- without a ``retrieval=`` keyword argument, is dense eager attention (transformers' own
  ``eager_attention_forward``, with the causal mask eager attention gets);
- at prefill (``q_len > 1``), attends densely and hands the layer's prompt keys and values
  to the index (``index.prefill``: PQ codebooks train in the background);
- at a decoding step (``q_len == 1``), appends the new token's key and value to the index,
  selects the tokens to attend (``index.select``: per KV head the sinks, the top-k of the
  middle by PQ score and the local window), gathers their rows from the index's KV store
  (``index.gather``) and runs the same eager attention over those rows only. Query heads
  ``h*g..(h+1)*g`` use KV head ``h``, as in transformers' ``repeat_kv``.

The model keeps its own ``DynamicCache``: it is the simplest correct way to get positions
and post-RoPE keys right (transformers computes ``position_ids`` from the cache length and
applies RoPE before the cache update, so the keys the function sees, and stores in the
index, are exactly those dense attention uses). The index holds a second copy of the KV
cache; a deployment that offloads the cache would give the model a cache that keeps only
the new token. One sequence (batch 1) per index.

The budget: ``retrieval.budget`` is the fraction of the context attended besides the first
``sink_tokens`` tokens, ``local_fraction`` of it as the local window and the rest as the
top-k of the middle. Validation takes a budget in (0, 1] and a local_fraction in [0, 1], and
the policy must ask for a top-k of 1 to ``topk.k_max`` at ``engine.max_tokens``. 100 % is
``budget = 1.0``: ``Accelerator.policy_split(n)`` then gives ``sink + topk + local == n`` for
every ``n`` (the top-k is the whole middle), whatever ``sink_tokens`` and ``local_fraction``
are. ``select`` returns each row ascending, so attention runs on the same rows in the same
order as dense attention, and the logits are bit-equal (``python/tests/test_hf_llama.py``).
The retrieved fraction printed per step counts the sinks too (about 10.7 % for a budget of
0.1 at 512 tokens). A random model attends almost uniformly, so a small budget moves its
logits by about their spread and often changes the greedy token; trained models concentrate
attention on few tokens, which is what retrieval relies on.

    .venv/bin/python python/examples/hf_llama.py --budget 0.1 --prompt-tokens 512 --steps 16
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import AttentionInterface, DynamicCache, LlamaConfig, LlamaForCausalLM
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.llama.modeling_llama import eager_attention_forward

import kvpq

# D = 64 in M = 4 subspaces of 4-bit codes (K = 16: the prefill needs at least 16 tokens).
# k_max = max_tokens: no budget asks for a larger top-k than the engine returns.
ACCELERATOR = """
name = "hf-llama-tiny"
[pq]
head_dim = {head_dim}
m = 4
code_bits = 4
[quant]
query_bits = 8
centroid_bits = 8
lut_bits = 16
[dist_unit]
macs = 16
[scanner]
lanes = 4
[topk]
strategy = "select"
k_max = 2048
[engine]
max_tokens = 2048
beat_bits = 64
[retrieval]
gqa_group = {gqa_group}
sink_tokens = 4
budget = {budget!r}
local_fraction = 0.5
"""


# The forward's cache argument: `cache` since transformers 5.24, `past_key_values` before.
CACHE = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


@dataclass
class Retrieval:
    """What the attention function needs besides transformers' arguments: the index of this
    sequence and, per layer, the ids the last decoding step attended."""

    index: kvpq.Index
    selected: dict[int, np.ndarray] = field(default_factory=dict)


def kvpq_attention(module, query, key, value, attention_mask, scaling, dropout=0.0,
                   retrieval: Retrieval | None = None, **kwargs):
    """transformers attention function; see the module docstring."""

    def attend(k, v, mask):  # transformers' eager attention of ``query`` over these rows
        return eager_attention_forward(module, query, k, v, mask, scaling, dropout, **kwargs)

    if retrieval is None:
        return attend(key, value, attention_mask)
    if key.shape[0] != 1:
        raise ValueError("kvpq attention serves one sequence (batch 1)")
    layer, index = module.layer_idx, retrieval.index
    if query.shape[2] > 1:  # prefill: dense attention; the prompt's keys and values into the index
        if key.shape[2] != query.shape[2]:
            raise NotImplementedError("kvpq attention prefills the whole prompt in one call")
        index.prefill(layer, key[0], value[0])
        return attend(key, value, attention_mask)
    # A decoding step: the new token into the index, then attention over the selected rows only.
    index.append(layer, key[0, :, -1:], value[0, :, -1:])
    if index.tokens(layer) != key.shape[2]:
        raise ValueError(f"layer {layer}: {index.tokens(layer)} tokens in the index, {key.shape[2]} cached")
    ids = index.select(layer, query[0, :, 0])  # (kv_heads, sink + topk + local), rows ascending
    k, v = index.gather(layer, ids)  # (kv_heads, n, head_dim) each
    retrieval.selected[layer] = ids
    return attend(torch.from_numpy(k)[None], torch.from_numpy(v)[None], None)  # all rows are past: no mask


def register() -> None:
    """Makes ``attn_implementation="kvpq"`` available; its masks are eager attention's."""
    AttentionInterface.register("kvpq", kvpq_attention)
    AttentionMaskInterface.register("kvpq", eager_mask)


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialized Llama: 4 layers, 8 query heads on 2 KV heads, head_dim 64."""
    register()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=2, head_dim=64,
                         max_position_embeddings=2048, attn_implementation="kvpq")
    return LlamaForCausalLM(config).eval()


def accelerator(model: LlamaForCausalLM, budget: float) -> kvpq.Accelerator:
    """The description above for ``model``'s head shape with retrieval budget ``budget``."""
    c = model.config
    group = c.num_attention_heads // c.num_key_value_heads
    text = ACCELERATOR.format(head_dim=c.head_dim, gqa_group=group, budget=float(budget))
    return kvpq.Accelerator.from_toml(text)


@dataclass
class Step:
    """One forward pass (the prompt's, then one per decoded token): last-position logits with
    kvpq attention and with dense attention over the same tokens, and the ids each layer
    attended (empty at prefill)."""

    tokens: int
    logits: torch.Tensor
    dense_logits: torch.Tensor
    selected: dict[int, np.ndarray]


@torch.no_grad()
def generate(model, index: kvpq.Index, prompt: torch.Tensor, steps: int, dense_model=None) -> list[Step]:
    """Greedy decoding of ``steps`` tokens after ``prompt`` (``(1, tokens)``) with kvpq
    attention, and dense attention (``dense_model``, default ``model`` without ``retrieval=``)
    fed the same tokens, each with its own ``DynamicCache``."""
    dense_model = dense_model or model
    caches = DynamicCache(config=model.config), DynamicCache(config=dense_model.config)
    out, ids = [], prompt
    for _ in range(steps + 1):
        retrieval = Retrieval(index)
        logits = model(ids, **{CACHE: caches[0]}, retrieval=retrieval).logits[0, -1]
        dense = dense_model(ids, **{CACHE: caches[1]}).logits[0, -1]
        out.append(Step(caches[0].get_seq_length(), logits, dense, retrieval.selected))
        ids = logits.argmax().view(1, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=0.1, help="retrieval.budget, a fraction in (0, 1]")
    p.add_argument("--prompt-tokens", type=int, default=512, help="16 (2 ** code_bits) to 2048 - steps")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    model = tiny_llama(a.seed)
    index = kvpq.Index(accelerator(model, a.budget), model.config.num_hidden_layers,
                       model.config.num_key_value_heads, dtype="f32")
    prompt = torch.randint(model.config.vocab_size, (1, a.prompt_tokens),
                           generator=torch.Generator().manual_seed(a.seed))
    print(f"budget {a.budget}: {a.prompt_tokens} prompt tokens, {a.steps} greedy steps")
    print(f"{'step':>7}  {'tokens':>6}  {'retrieved':>9}  {'max |logit - dense|':>19}  same token")
    for i, s in enumerate(generate(model, index, prompt, a.steps)):
        kept = np.mean([ids.shape[1] for ids in s.selected.values()]) / s.tokens if s.selected else 1.0
        diff = (s.logits - s.dense_logits).abs().max().item()
        same = bool(s.logits.argmax() == s.dense_logits.argmax())
        print(f"{'prefill' if i == 0 else i:>7}  {s.tokens:>6}  {kept:>9.1%}  {diff:>19.3e}  {same}")


if __name__ == "__main__":
    main()
