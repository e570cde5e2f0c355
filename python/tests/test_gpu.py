"""The gpu device. Without a GPU (CI): the backend is built in, opening it says why it
cannot run, and CUDA queries are refused with a message that names the fix, before any of
their memory is touched. With torch and a CUDA GPU: selections on the GPU equal the cpu
device's (bit-exact), stay on the GPU as int32 DLPack tensors, follow torch's streams and
outlive the index."""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest

import kvpq
from conftest import G, HEADS, make_keys, make_queries, new_index
from dlpack_producer import CUDA, FLOAT32, Producer

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_gpu = pytest.mark.skipif(
    torch is None or not torch.cuda.is_available(), reason="needs torch and a CUDA GPU"
)


def cuda_devices() -> int:
    """GPUs the CUDA driver sees (0 without a driver), asked without torch."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def check(info, kind: str):
    assert info.value.kind == kind, info.value.kind


# --- everywhere (CI has no GPU) -----------------------------------------------------------


def test_gpu_is_built_in():
    assert "gpu" in kvpq.backends()
    assert kvpq.GpuSelection is not None


@pytest.mark.skipif(cuda_devices() > 0, reason="a GPU is here")
def test_gpu_device_without_a_gpu(acc):
    with pytest.raises(kvpq.DeviceUnavailableError, match="gpu device unavailable: ") as e:
        kvpq.Index(acc, 1, HEADS, device="gpu")
    check(e, "unavailable")
    with pytest.raises(kvpq.DeviceUnavailableError, match="gpu device unavailable"):
        kvpq.Index(acc, 2, HEADS, device=["cpu", "gpu"])


def test_gpu_device_options(acc):
    # Checked before the GPU is opened: the same answers with or without one.
    with pytest.raises(kvpq.InputError, match=r'device option "port" is not one the gpu device reads \(ordinal\)') as e:
        kvpq.Index(acc, 1, HEADS, device="gpu", device_options={"port": "/dev/ttyUSB0"})
    check(e, "device")
    with pytest.raises(kvpq.InputError, match="the gpu device takes no path") as e:
        kvpq.Index(acc, 1, HEADS, device="gpu", path="/tmp")
    check(e, "device")


def test_cuda_queries_need_a_gpu_device(acc, rng, prefilled):
    index, _ = prefilled
    q = make_queries(rng)
    fake = Producer(q, FLOAT32, device=CUDA)
    with pytest.raises(kvpq.InputError, match=r'queries: a CUDA tensor \(device 0\), but this index selects on \["cpu"\].*device="gpu".*queries.cpu\(\)') as e:
        index.select(0, fake)
    check(e, "device")
    # Refused from __dlpack_device__ alone: the memory was never asked for.
    assert fake.exports == 0 and fake.streams == []
    # The same array on the host is fine.
    np.testing.assert_array_equal(index.select(0, Producer(q, FLOAT32)), index.select(0, q))


def test_device_memory_is_refused_for_keys(acc, rng):
    index = new_index(acc, layers=1)
    keys = make_keys(rng, 300)
    with pytest.raises(kvpq.InputError, match="device type 2") as e:
        index.prefill(0, Producer(keys, FLOAT32, device=CUDA), keys)
    check(e, "device")


# --- on a GPU (torch with CUDA) -----------------------------------------------------------


def pair(acc, rng, dtype="f32", layers=1, tokens=600, **kw):
    """A cpu index and a gpu index holding the same keys and values."""
    cpu = new_index(acc, dtype=dtype, layers=layers, **kw)
    gpu = new_index(acc, dtype=dtype, layers=layers, device="gpu", **kw)
    for layer in range(layers):
        k, v = make_keys(rng, tokens), make_keys(rng, tokens)
        cpu.prefill(layer, k, v)
        gpu.prefill(layer, k, v)
    return cpu, gpu


def on_host(ids) -> "torch.Tensor":
    """A GPU selection tensor as the host's int64 ids."""
    return ids.cpu().to(torch.int64)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_gpu_selection_equals_cpu(acc, rng, dtype):
    dtype = getattr(torch, dtype)
    cpu, gpu = pair(acc, rng)
    assert gpu.devices == ["gpu"]
    q = torch.from_numpy(make_queries(rng)).to(dtype)
    want = torch.from_numpy(cpu.select(0, q))
    sel = gpu.select(0, q.cuda())
    assert isinstance(sel, kvpq.GpuSelection)
    ids = torch.from_dlpack(sel)
    assert ids.is_cuda and ids.device.index == sel.device == 0
    assert ids.dtype == torch.int32
    assert tuple(ids.shape) == sel.shape == tuple(want.shape)
    assert ids.is_contiguous()
    assert sel.dtype == "int32"
    assert sel.split["tokens"] == 600
    assert sel.split["topk"] == acc.policy_split(600)["topk"]
    assert sel.shape[1] == sum(sel.split[p] for p in ("sink", "topk", "local"))
    assert torch.equal(on_host(ids), want)
    np.testing.assert_array_equal(sel.to_host(), want.numpy())
    assert "GpuSelection(shape=(2, " in repr(sel)
    # Host queries on the gpu device: numpy on the host, as on cpu.
    np.testing.assert_array_equal(gpu.select(0, q), want.numpy())
    # torch indexes with the int32 ids as they are (index_select), or as int64 (gather).
    tokens = torch.arange(1000, device="cuda")
    assert torch.equal(tokens.index_select(0, ids[1]).cpu(), want[1])
    rows = tokens[None].expand(HEADS, -1)
    assert torch.equal(rows.gather(1, ids.long()).cpu(), want)


@needs_gpu
def test_gpu_selection_in_a_decoding_loop(acc, rng):
    # Retraining every 6 tokens changes codebooks and code streams under the GPU engine;
    # host and CUDA queries share it; explicit k's change the shape.
    cpu, gpu = pair(acc, rng, layers=2, retrain_every=6)
    for step in range(20):
        for layer in range(2):
            k, v = make_keys(rng, 1), make_keys(rng, 1)
            cpu.append(layer, k, v)
            gpu.append(layer, k, v)
            # A re-training swaps codebooks in when it is done: wait, so both indices select
            # with the same ones.
            cpu.wait_trained(layer)
            gpu.wait_trained(layer)
            q = make_queries(rng)
            want = torch.from_numpy(cpu.select(layer, q))
            ids = torch.from_dlpack(gpu.select(layer, torch.from_numpy(q).cuda()))
            assert torch.equal(on_host(ids), want), (step, layer)
            if step % 5 == 0:
                np.testing.assert_array_equal(gpu.select(layer, q), want.numpy())
                sel = gpu.select(layer, torch.from_numpy(q).cuda(), k=10 + step)
                np.testing.assert_array_equal(sel.to_host(), cpu.select(layer, q, k=10 + step))
    assert gpu.tokens(1) == 620


@needs_gpu
def test_gpu_selection_with_layers_on_cpu_and_gpu(acc, rng):
    # Layer 0 is served by the cpu device, layer 1 by the gpu device; CUDA queries run on
    # the gpu device for both.
    ref = new_index(acc, layers=2)
    mixed = new_index(acc, layers=2, device=["cpu", "gpu"], sharding="layers")
    assert mixed.devices == ["cpu", "gpu"]
    for layer in range(2):
        k, v = make_keys(rng, 600), make_keys(rng, 600)
        ref.prefill(layer, k, v)
        mixed.prefill(layer, k, v)
    for layer in range(2):
        for _ in range(3):
            q = make_queries(rng)
            want = ref.select(layer, q)
            np.testing.assert_array_equal(mixed.select(layer, q), want)
            got = torch.from_dlpack(mixed.select(layer, torch.from_numpy(q).cuda()))
            assert torch.equal(on_host(got), torch.from_numpy(want))


@needs_gpu
def test_gpu_selection_outlives_the_index(acc, rng):
    cpu, gpu = pair(acc, rng)
    q = make_queries(rng)
    want = torch.from_numpy(cpu.select(0, q))
    ids = torch.from_dlpack(gpu.select(0, torch.from_numpy(q).cuda()))
    kept = gpu.select(0, torch.from_numpy(q).cuda())  # never exported
    del gpu
    gc.collect()
    # Another index allocates and frees selections meanwhile.
    _, other = pair(acc, rng)
    for _ in range(5):
        torch.from_dlpack(other.select(0, torch.from_numpy(make_queries(rng)).cuda()))
    del other
    gc.collect()
    torch.cuda.synchronize()
    assert torch.equal(on_host(ids), want)
    np.testing.assert_array_equal(kept.to_host(), want.numpy())
    late = torch.from_dlpack(kept)
    del kept
    gc.collect()
    assert torch.equal(on_host(late), want)


@needs_gpu
def test_gpu_selection_follows_torch_streams(acc, rng):
    cpu, gpu = pair(acc, rng)
    q = make_queries(rng)
    want = torch.from_numpy(cpu.select(0, q))
    host_q = torch.from_numpy(q).pin_memory()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        # The query is written on `side` after a ~50 ms wait: kvpq reads it only after,
        # because torch's __dlpack__ made kvpq's stream wait for `side`.
        torch.cuda._sleep(100_000_000)
        qd = host_q.to("cuda", non_blocking=True) * 1.0
        sel = gpu.select(0, qd)
        ids = torch.from_dlpack(sel)  # `side` waits for kvpq's kernels
        out = ids.to(torch.int64) + 0  # runs on `side`
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(out.cpu(), want)
    # And on the default stream (torch passes 1, the legacy default stream).
    ids = torch.from_dlpack(gpu.select(0, torch.from_numpy(q).cuda()))
    assert torch.equal(on_host(ids), want)


@needs_gpu
def test_gpu_dlpack_protocol(acc, rng):
    _, gpu = pair(acc, rng)
    sel = gpu.select(0, torch.from_numpy(make_queries(rng)).cuda())
    assert sel.__dlpack_device__() == (2, 0)
    from torch.utils.dlpack import from_dlpack as from_capsule

    # An unversioned capsule (consumers before DLPack 1.0) shares the memory.
    stream = torch.cuda.current_stream().cuda_stream or 1
    a = from_capsule(sel.__dlpack__(stream=stream))
    b = torch.from_dlpack(sel)
    assert a.data_ptr() == b.data_ptr() and a.dtype == torch.int32
    # copy=True: new memory, same ids.
    c = from_capsule(sel.__dlpack__(copy=True))
    assert c.data_ptr() != a.data_ptr() and torch.equal(c, a)
    # Capsules nobody consumes are released.
    for _ in range(3):
        sel.__dlpack__(max_version=(1, 0))
        sel.__dlpack__(stream=-1)
    gc.collect()
    assert sel.__dlpack__(dl_device=(2, 0)) is not None
    with pytest.raises(ValueError, match="stream=0 is ambiguous"):
        sel.__dlpack__(stream=0)
    with pytest.raises(BufferError, match="not supported"):
        sel.__dlpack__(dl_device=(1, 0))
    torch.cuda.synchronize()
    assert torch.equal(a, c)


@needs_gpu
def test_gpu_query_layouts_and_errors(acc, rng):
    cpu, gpu = pair(acc, rng)
    q = make_queries(rng)
    want = torch.from_numpy(cpu.select(0, q))
    qd = torch.from_numpy(q).cuda()
    # Rows apart (a slice of a wider tensor): copied row by row.
    wide = torch.zeros(HEADS * G, 48, device="cuda")
    wide[:, 8:40] = qd
    assert torch.equal(on_host(torch.from_dlpack(gpu.select(0, wide[:, 8:40]))), want)
    with pytest.raises(kvpq.InputError, match="queries.contiguous") as e:
        gpu.select(0, qd.t().contiguous().t())
    check(e, "layout")
    with pytest.raises(kvpq.InputError, match=r"queries: \(4, 31\), expected \(4, 32\)") as e:
        gpu.select(0, qd[:, 1:])
    check(e, "shape")
    with pytest.raises(kvpq.InputError, match=r"queries: shape \(32,\), expected 2 dimensions") as e:
        gpu.select(0, qd[0])
    check(e, "shape")
    bad = qd.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(kvpq.InputError, match="queries: element 0 is NaN") as e:
        gpu.select(0, bad)
    check(e, "non_finite")
    with pytest.raises(kvpq.InputError, match="dtype float64") as e:
        gpu.select(0, qd.double())
    check(e, "dtype")
    with pytest.raises(kvpq.InputError, match='device="gpu"') as e:
        cpu.select(0, qd)
    check(e, "device")
    # Keys stay on the host.
    with pytest.raises(kvpq.InputError, match="move it to the CPU") as e:
        gpu.append(0, torch.zeros(HEADS, 1, 32, device="cuda"), torch.zeros(HEADS, 1, 32, device="cuda"))
    check(e, "device")
    assert gpu.tokens(0) == 600
