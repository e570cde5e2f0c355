"""Type stubs of the extension module ``kvpq._kvpq`` (re-exported by ``kvpq``).

Array arguments (``ArrayLike`` below) are numpy arrays or objects with ``__dlpack__`` whose
memory the CPU can read (a torch CPU tensor, pinned or not). They are read, or for
``gather`` written, in place: no copy is made. Other Python threads must not write an array
while a call that received it runs (the GIL is released during the work, as numpy does).

Element types: keys and values are float32, float16 or bfloat16 (DLPack, e.g.
``torch.bfloat16``; numpy has no bfloat16, so an index created with ``dtype="bf16"`` also
takes numpy uint16 arrays holding bfloat16 bits, e.g. ``t.view(torch.uint16).numpy()``).
float64 is refused rather than silently copied: call ``.astype(numpy.float32)``.

On the GPU: an index created with ``device="gpu"`` also takes CUDA queries in ``select``
(DLPack device type 2, e.g. a torch CUDA tensor) and returns a :class:`GpuSelection` that
stays on the GPU; every other argument stays on the host.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping, Sequence, Union

import numpy as np
import numpy.typing as npt

#: A numpy array or any object with ``__dlpack__`` on the host.
ArrayLike = Any
#: A path.
PathLike = Union[str, "os.PathLike[str]"]

__version__: str

def backends() -> list[str]:
    """The device backends built into this module: ``cpu`` and ``xrt`` always, ``gpu`` in
    the wheel (cargo feature ``cuda``: it builds and imports without CUDA, the driver is
    loaded when a ``gpu`` device opens), ``board`` and ``sim`` when built with those cargo
    features (``maturin build --features board``); naming a missing one raises
    :class:`kvpq.DeviceUnavailableError`. A backend listed here may still be unavailable on
    this machine (no GPU, no XRT): opening it then raises the same error with the reason."""

class Accelerator:
    """A validated accelerator description (the TOML files of ``examples/``): PQ shape,
    fixed-point widths, engine limits and the retrieval policy (sinks, budget, window).
    Equal descriptions compare equal."""

    def __init__(self, source: Accelerator | PathLike) -> None:
        """Reads ``source``: TOML text (a ``str`` with a newline or ``=``), a path to a TOML
        file (an ``os.PathLike``, or any other ``str``) or an ``Accelerator``.

        Raises :class:`kvpq.InputError` (kind ``"config"``) naming the key, line and column
        of a bad description, or the file that cannot be read."""
    @staticmethod
    def from_toml(text: str) -> Accelerator:
        """Parses TOML text."""
    @staticmethod
    def from_file(path: PathLike) -> Accelerator:
        """Reads a TOML file."""
    def to_toml(self) -> str:
        """The description as TOML; parses back to an equal ``Accelerator``."""
    @property
    def config(self) -> dict[str, Any]:
        """The description as nested dicts, e.g. ``config["retrieval"]["budget"]``."""
    @property
    def layout(self) -> dict[str, int]:
        """How PQ codes are packed into beats (docs/design.md section 4): ``m``,
        ``code_bits``, ``beat_bits``, ``tokens_per_beat``, ``padding_bits`` and
        ``words_per_beat`` (64-bit words per beat)."""
    @property
    def name(self) -> str:
        """Name of the design."""
    @property
    def head_dim(self) -> int:
        """Key dimension per head D."""
    @property
    def gqa_group(self) -> int:
        """Query heads per KV head; ``select`` sums each group's queries."""
    @property
    def max_tokens(self) -> int:
        """Longest context the engine scans (``engine.max_tokens``)."""
    def policy_split(self, tokens: int) -> dict[str, int]:
        """How the retrieval policy splits a context of ``tokens``: ``tokens``, ``sink``,
        ``local`` (window), ``middle`` (scanned) and ``topk`` (retrieved from the middle).
        ``select`` returns ``sink + topk + local`` ids per KV head."""

class Folder:
    """A generated folder (RTL, kernel or bitstream) whose manifest and file hashes were
    checked by :func:`open_folder`. Pass it as ``config`` to :class:`Index` to use its
    description, with its path as the devices' default path."""

    @property
    def path(self) -> pathlib.Path:
        """The folder."""
    @property
    def accelerator(self) -> Accelerator:
        """The description the folder was generated from."""
    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` as a dict."""

def open_folder(
    path: PathLike,
    *,
    head_dim: int | None = None,
    max_tokens: int | None = None,
    gqa_group: int | None = None,
) -> Folder:
    """Reads and checks a generated folder the way every hardware backend opens it: the
    manifest, the SHA-256 of every file, and the model parameters given here (``None`` is
    not checked; ``max_tokens`` is the longest context the model needs).

    Raises :class:`kvpq.InputError`, kind ``"manifest"`` (unreadable, malformed or modified
    folder) or ``"mismatch"`` (the folder was built for other parameters; the message names
    the field and both values)."""

class Training:
    """Codebook training at prefill and re-training; ``None`` keeps the runtime's default
    (256 points per centroid, 10 Lloyd iterations, tolerance 1e-3, seed 0, one thread per
    core). Training runs in the background: ``prefill`` returns at once."""

    def __init__(
        self,
        *,
        points_per_centroid: int | None = None,
        max_iters: int | None = None,
        tolerance: float | None = None,
        seed: int | None = None,
        threads: int | None = None,
    ) -> None: ...
    @property
    def points_per_centroid(self) -> int:
        """k-means sees at most this many x K keys per head (a uniform subsample)."""
    @property
    def max_iters(self) -> int:
        """Lloyd iterations at most."""
    @property
    def tolerance(self) -> float:
        """Stop when the inertia improves by less than this fraction."""
    @property
    def seed(self) -> int:
        """Seed of the subsample and of k-means++."""
    @property
    def threads(self) -> int:
        """Threads of the background training pool (0: one per core)."""

class HeadCodes:
    """One KV head's codebooks and packed code stream, copied out of an :class:`Index`: what
    the devices are given, for checks and export."""

    @property
    def centroids(self) -> npt.NDArray[np.float32]:
        """Float codebooks ``(m, K, head_dim // m)``."""
    @property
    def quant_centroids(self) -> npt.NDArray[np.int32]:
        """Integer codebooks the device holds, ``(m, K, head_dim // m)``."""
    @property
    def quant_scale(self) -> float:
        """Scale of the integer codebooks (``centroid ~= value * scale``)."""
    @property
    def beats(self) -> npt.NDArray[np.uint64]:
        """Packed codes (``Accelerator.layout``); stream position ``i`` is token
        ``sink_tokens + i``."""
    @property
    def stream_tokens(self) -> int:
        """Tokens in the stream (the context minus the sinks)."""

class GpuSelection:
    """A layer's selection for CUDA queries, left on the GPU: token ids
    ``(kv_heads, sink + topk + local)``, each row ascending, as ``select`` returns for host
    queries. A DLPack producer: ``torch.from_dlpack(sel)`` is an int32 CUDA tensor sharing
    its memory (no copy; ids are below 2**31). The memory is freed when this object and
    every tensor made from it are gone (the GPU context stays alive meanwhile, also after
    the index is dropped).

    Streams: kvpq's kernels run on kvpq's own stream. ``__dlpack__(stream=s)`` makes the
    consumer's stream ``s`` wait for them on the GPU (an event; the host does not wait and
    the device is not synchronized); ``torch.from_dlpack`` passes torch's current stream. When
    the tensor is released, kvpq waits (on the GPU) for the work queued on ``s`` so far
    before the memory is freed and reused: use the tensor on ``s`` (torch's current stream at
    import), or order other streams yourself, and keep ``s`` alive as long as the tensor."""

    def __dlpack__(
        self,
        *,
        stream: int | None = None,
        max_version: tuple[int, int] | None = None,
        dl_device: tuple[int, int] | None = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule (``dltensor_versioned`` when ``max_version >= (1, 0)``, else
        ``dltensor``) of the ids, int32 ``(kv_heads, per_head)`` row-major on the GPU.
        ``stream``: ``None`` or ``1`` the legacy default stream, ``2`` the per-thread default
        stream, ``-1`` no synchronization, else a ``cudaStream_t`` handle; ``0`` raises
        ``ValueError``. ``copy=True`` exports a copy in new memory; ``dl_device`` other than
        :meth:`__dlpack_device__` raises ``BufferError``."""
    def __dlpack_device__(self) -> tuple[int, int]:
        """``(2, ordinal)``: kDLCUDA and the GPU's device id."""
    @property
    def shape(self) -> tuple[int, int]:
        """``(kv_heads, sink + topk + local)``."""
    @property
    def dtype(self) -> str:
        """``"int32"``."""
    @property
    def device(self) -> int:
        """The GPU's ordinal (``cuda:<device>``)."""
    @property
    def split(self) -> dict[str, int]:
        """How the policy split the context: ``tokens``, ``sink``, ``local``, ``middle`` and
        ``topk`` (as :meth:`Accelerator.policy_split`)."""
    def to_host(self) -> npt.NDArray[np.int64]:
        """A host copy, int64 numpy ``(kv_heads, per_head)`` (what ``select`` returns for
        host queries); waits for kvpq's stream."""

class Index:
    """The retrieval index of one model (PQCache-style): for ``layers`` x ``kv_heads`` it
    stores keys and values (the host KV store), trains PQ codebooks at prefill in the
    background, encodes appended tokens, and answers ``select`` with one device call per
    layer. Thread-safe: threads may prefill, append and select different layers at once and
    get the answers one thread would.

    Errors are :class:`kvpq.InputError` (a ``ValueError``) for bad arguments and
    :class:`kvpq.DeviceError` (a ``RuntimeError``) for device faults; a failed call changes
    nothing."""

    def __init__(
        self,
        config: Accelerator | Folder | PathLike,
        layers: int,
        kv_heads: int,
        *,
        dtype: str | np.dtype[Any] | type | Any = "f32",
        device: str | Sequence[str] = "cpu",
        path: PathLike | None = None,
        device_options: Mapping[str, Any] | None = None,
        capacity: int | None = None,
        sharding: str = "layers",
        retrain_every: int | None = None,
        training: Training | None = None,
    ) -> None:
        """Creates an index.

        :param config: the accelerator description (see :class:`Accelerator`), or a checked
            :class:`Folder`.
        :param dtype: element type of the KV store: ``"f32"``, ``"f16"`` or ``"bf16"``
            (``numpy.float16``, ``torch.bfloat16`` and the like work too).
        :param device: the backend, or a list of backends to spread the model over (e.g.
            ``["cpu", "cpu"]``); see :func:`backends`. ``cpu`` runs on the host; ``gpu`` on
            an NVIDIA GPU (CUDA driver and NVRTC loaded at run time; without them, or
            without a GPU, :class:`kvpq.DeviceUnavailableError` says why), bit-exact with
            ``cpu``, and makes ``select`` take CUDA queries; ``xrt`` (an Alveo card),
            ``board`` (a ULX3S over its UART) and ``sim`` (the Verilator model) open a
            generated folder, checked like :func:`open_folder` and required to be generated
            from ``config``.
        :param path: the generated folder of ``xrt``, ``board`` and ``sim`` (default: the
            path of ``config`` when it is a :class:`Folder`); ``cpu`` and ``gpu`` take none.
        :param device_options: backend options: ``gpu``: ``ordinal`` (CUDA device id,
            default 0); ``xrt``: ``library`` (libxrt_coreutil path), ``device_index``
            (card), ``xclbin``, ``kernel`` (``"rtl"`` or ``"hls"``); ``board``: ``port``
            (e.g. ``"/dev/ttyUSB0"``, required); ``cpu`` and ``sim``: none.
        :param capacity: tokens per layer the store holds (allocated per layer at its
            prefill); default ``sink_tokens + engine.max_tokens``.
        :param sharding: with several devices, ``"layers"`` (layer ``l`` on device
            ``l % n``) or ``"heads"`` (head ``h`` of every layer on device ``h % n``).
        :param retrain_every: re-train a layer's codebooks in the background after this many
            appended tokens.
        :param training: codebook training options.
        """
    def prefill(self, layer: int, keys: ArrayLike, values: ArrayLike) -> None:
        """Starts a new sequence on ``layer`` with the prompt's keys and values, each
        ``(kv_heads, tokens, head_dim)`` of the same dtype (converted to the store's).
        Codebook training runs in the background; ``select`` waits for it. The prompt needs
        at least ``2 ** code_bits`` tokens. Releases the GIL."""
    def append(self, layer: int, keys: ArrayLike, values: ArrayLike) -> None:
        """Appends decoded tokens' keys and values, ``(kv_heads, tokens, head_dim)``, to
        ``layer`` and encodes them (waiting for the prefill's training). Releases the GIL."""
    def select(
        self, layer: int, queries: ArrayLike, k: int | None = None
    ) -> npt.NDArray[np.int64] | GpuSelection:
        """The tokens ``layer`` attends at this step for ``queries``
        ``(kv_heads * gqa_group, head_dim)`` (float32; float16 and bfloat16 are widened):
        per KV head the sinks, the top-k of the middle by PQ score and the local window.

        Returns int64 ``(kv_heads, sink + topk + local)``, each row ascending: int64 is what
        ``torch.index_select``/``torch.gather`` take (``torch.from_numpy(ids)`` shares it).
        ``k`` overrides the policy's top-k; more than the middle holds raises
        :class:`kvpq.InputError` (kind ``"budget"``). Releases the GIL.

        CUDA queries (an object whose ``__dlpack_device__`` is CUDA, e.g. a torch CUDA
        tensor, rows contiguous) need an index with a ``gpu`` device on the same GPU (else
        :class:`kvpq.InputError`, kind ``"device"``): the selection runs there (the index's
        first ``gpu`` device) and comes back as a :class:`GpuSelection` on the GPU, equal to
        the host result (``torch.from_dlpack(sel)``: int32). The query is asked for on a
        stream of kvpq's (``__dlpack__(stream=...)``), so it is read after the work that
        wrote it without synchronizing the device; the call waits for that copy (queries are
        quantized on the host), not for the selection."""
    def gather(
        self,
        layer: int,
        ids: ArrayLike,
        keys_out: ArrayLike | None = None,
        values_out: ArrayLike | None = None,
    ) -> tuple[Any, Any]:
        """Copies the stored keys and values of ``ids`` (``(kv_heads, n)`` token ids of
        ``layer``, any integer dtype and order, e.g. what ``select`` returned) into
        ``(kv_heads, n, head_dim)`` buffers, and returns them.

        ``keys_out`` / ``values_out`` are written in place when given (numpy arrays or
        DLPack tensors of the store's dtype, bfloat16 also as uint16; C-contiguous ones
        directly, strided ones through a staging copy); missing ones are allocated as numpy
        arrays (float32, float16, or uint16 bfloat16 bits:
        ``torch.from_numpy(k).view(torch.bfloat16)``). A wrong dtype or shape raises
        :class:`kvpq.InputError` naming both. Releases the GIL."""
    def wait_trained(self, layer: int) -> None:
        """Blocks until no codebook training of ``layer`` is in flight; raises
        :class:`kvpq.DeviceError` (kind ``"training"``) if the layer has no codebooks then.
        Releases the GIL."""
    def tokens(self, layer: int) -> int:
        """Context length of ``layer`` (0 before its prefill)."""
    def head_codes(self, layer: int, head: int) -> HeadCodes:
        """A copy of one head's codebooks and code stream (waits for a pending training)."""
    @property
    def layers(self) -> int: ...
    @property
    def kv_heads(self) -> int: ...
    @property
    def q_heads(self) -> int:
        """``kv_heads * gqa_group``: the rows ``select`` takes."""
    @property
    def head_dim(self) -> int: ...
    @property
    def dtype(self) -> str:
        """``"f32"``, ``"f16"`` or ``"bf16"``."""
    @property
    def capacity(self) -> int:
        """Tokens each layer can hold."""
    @property
    def devices(self) -> list[str]:
        """Backend names of the devices, in index order."""
    @property
    def accelerator(self) -> Accelerator: ...
