"""kvpq: PQ (product-quantization) KV-cache retrieval for decoding loops.

An :class:`Index` holds, for every layer and KV head of a model, the keys and values of the
context (the host KV store) and the PQ codes that a device (``"cpu"``, ``"gpu"``, ``"xrt"``,
``"board"`` or ``"sim"``: see :func:`backends`) scans to pick the tokens each decoding step
attends::

    import kvpq
    index = kvpq.Index("examples/pqcache-llama3.toml", layers=32, kv_heads=8, dtype="bf16")
    index.prefill(layer, keys, values)        # (kv_heads, tokens, head_dim)
    ids = index.select(layer, queries)        # int64 (kv_heads, sink + topk + local)
    k, v = index.gather(layer, ids)           # (kv_heads, len_per_head, head_dim)
    index.append(layer, new_keys, new_values)

Arrays are numpy arrays or any object with ``__dlpack__`` on the host (a torch CPU tensor),
read and written in place. An index with ``device="gpu"`` also takes CUDA queries and returns
a :class:`GpuSelection` that stays on the GPU (``torch.from_dlpack(sel)``: int32, no copy).
See ``docs/python.md`` and the stubs in ``_kvpq.pyi``.
"""

from ._errors import DeviceError, DeviceUnavailableError, InputError, KvpqError
from ._kvpq import (
    Accelerator,
    Folder,
    HeadCodes,
    Index,
    Training,
    __version__,
    backends,
    open_folder,
)

try:  # built with the `cuda` feature (the wheel always is)
    from ._kvpq import GpuSelection
except ImportError:  # pragma: no cover
    GpuSelection = None  # type: ignore[assignment,misc]

__all__ = [
    "Accelerator",
    "DeviceError",
    "DeviceUnavailableError",
    "Folder",
    "GpuSelection",
    "HeadCodes",
    "Index",
    "InputError",
    "KvpqError",
    "Training",
    "__version__",
    "backends",
    "open_folder",
]
