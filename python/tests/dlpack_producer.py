"""A minimal DLPack producer written with ctypes, to test the protocol without torch: it
exports a numpy buffer as any DLPack dtype (bfloat16 included), device (a CUDA one too, to
test refusals without a GPU: nothing may read its memory as GPU memory), version and
read-only flag, and records the consumer's ``stream`` argument of every export."""

from __future__ import annotations

import ctypes

import numpy as np

c_int64_p = ctypes.POINTER(ctypes.c_int64)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", c_int64_p),
        ("strides", c_int64_p),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    pass


class DLManagedTensorVersioned(ctypes.Structure):
    pass


Deleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
DLManagedTensor._fields_ = [
    ("dl_tensor", DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", Deleter),
]
DLManagedTensorVersioned._fields_ = [
    ("major", ctypes.c_uint32),
    ("minor", ctypes.c_uint32),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", Deleter),
    ("flags", ctypes.c_uint64),
    ("dl_tensor", DLTensor),
]

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]

BFLOAT = (4, 16)
FLOAT32 = (2, 32)
CPU, CUDA = 1, 2


class Producer:
    """Exports ``array``'s memory as a DLPack tensor of ``dtype`` (code, bits), e.g. uint16
    bits as bfloat16, on DLPack device ``(device, device_id)``. The capsules have no
    destructor: this object owns every struct; ``exports`` counts the capsules handed out
    and ``streams`` lists the ``stream`` argument of each."""

    def __init__(self, array, dtype=BFLOAT, device=CPU, versioned=True, read_only=False,
                 null_strides=False, device_id=0):
        self.array = array
        self.dtype, self.device, self.device_id = dtype, device, device_id
        self.versioned, self.read_only = versioned, read_only
        self.null_strides = null_strides
        self.exports = 0
        self.streams = []
        self._keep = []

    def __dlpack_device__(self):
        return (self.device, self.device_id)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        self.streams.append(stream)
        a = self.array
        shape = (ctypes.c_int64 * a.ndim)(*a.shape)
        strides = (ctypes.c_int64 * a.ndim)(*(s // a.itemsize for s in a.strides))
        t = DLTensor(
            data=a.ctypes.data,
            device=DLDevice(self.device, self.device_id),
            ndim=a.ndim,
            dtype=DLDataType(self.dtype[0], self.dtype[1], 1),
            shape=ctypes.cast(shape, c_int64_p),
            strides=None if self.null_strides else ctypes.cast(strides, c_int64_p),
            byte_offset=0,
        )
        deleter = Deleter(0)
        if self.versioned and max_version is not None and max_version[0] >= 1:
            m = DLManagedTensorVersioned(1, 0, None, deleter, 1 if self.read_only else 0, t)
            name = b"dltensor_versioned"
        else:
            m = DLManagedTensor(t, None, deleter)
            name = b"dltensor"
        self._keep += [shape, strides, m]
        self.exports += 1
        return _capsule_new(ctypes.addressof(m), name, None)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even (the runtime's conversion)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + ((u >> 16) & 1) + 0x7FFF) >> 16).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


class ViaDLPack:
    """Hides a numpy array behind ``__dlpack__`` only, so the DLPack path reads it."""

    def __init__(self, array):
        self.array = array

    def __dlpack__(self, **kw):
        return self.array.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()
