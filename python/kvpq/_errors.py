"""The exceptions kvpq raises. Every one is a :class:`KvpqError` with the runtime's message
and a ``kind`` string naming the rule that was broken (``"shape"``, ``"non_finite"``, ...).

* :class:`InputError` (also a :class:`ValueError`): the caller's input is wrong: a shape, a
  dtype, a layer or token out of range, a NaN, a budget larger than the context, a select
  before prefill, a folder that does not match the model.
* :class:`DeviceError` (also a :class:`RuntimeError`): a device faulted or codebook training
  failed; :class:`DeviceUnavailableError` when a backend cannot run on this machine.
"""

from __future__ import annotations


class KvpqError(Exception):
    """Base class of every kvpq error; ``kind`` names what went wrong."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):  # pickles (e.g. across processes) with its kind
        return (type(self), (str(self), self.kind))


class InputError(KvpqError, ValueError):
    """An argument is invalid: shape, dtype, range, non-finite value, budget, state."""


class DeviceError(KvpqError, RuntimeError):
    """A device call or a codebook training failed."""


class DeviceUnavailableError(DeviceError):
    """The backend cannot run here (not built in, no driver, no board)."""
