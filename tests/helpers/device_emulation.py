"""A stand-in accelerator for the CPU: tensors on the "meta" device that hold real CPU data, and that refuse, as
a CUDA device does, to be mixed with CPU tensors.

Code meant to run on a GPU can then be run here, end to end, with real numbers: `with EmulatedDevice():` makes
every tensor created on or moved to `DEVICE` an `OnDevice` tensor (its device says meta; its data is a CPU tensor
the operations run on), `.cpu()` gives a plain CPU tensor back, and an operation that receives both an `OnDevice`
tensor and a CPU tensor of one or more dimensions raises (CUDA allows 0-dim CPU tensors as scalars, so this does
too). What a GPU would refuse is refused: `.numpy()` of a device tensor, a CPU `torch.Generator` drawing on the
device. It is stricter than CUDA in one way: CUDA accepts CPU index tensors in advanced indexing
(`cuda_tensor[cpu_index]`), this does not, which costs nothing to satisfy. Because every operation runs the same
CPU kernel it would run on a plain tensor, a correct device path gives bit-identical results to the CPU path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

DEVICE = torch.device("meta")
"""The device name code under test is given (`train_features(device=DEVICE)`)."""


class DeviceMixError(RuntimeError):
    """A CPU tensor met a device tensor in one operation (what CUDA calls 'Expected all tensors to be on the same
    device')."""


class OnDevice(torch.Tensor):
    """A tensor that says it lives on `DEVICE` and keeps its data in `inner` (a CPU tensor)."""

    inner: torch.Tensor

    @staticmethod
    def __new__(cls, inner: torch.Tensor) -> OnDevice:
        return torch.Tensor._make_wrapper_subclass(
            cls,
            inner.shape,
            strides=inner.stride(),
            storage_offset=inner.storage_offset(),
            dtype=inner.dtype,
            device=DEVICE,
            requires_grad=inner.requires_grad,
        )

    def __init__(self, inner: torch.Tensor) -> None:
        self.inner = inner

    def __repr__(self) -> str:  # type: ignore[override]
        return f"OnDevice({self.inner!r})"

    def tolist(self) -> Any:  # as a CUDA tensor's: copies to the host
        return self.inner.tolist()

    def numpy(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("can't convert a device tensor to numpy; use Tensor.cpu() to copy it to the host first")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("can't convert a device tensor to numpy; use Tensor.cpu() to copy it to the host first")

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _is_device(dev: Any) -> bool:
    return dev is not None and torch.device(dev).type == DEVICE.type


def _run(func, args: tuple, kwargs: dict[str, Any]) -> Any:
    flat, _ = tree_flatten((args, kwargs))
    on_device = [a for a in flat if isinstance(a, OnDevice)]
    on_cpu = [a for a in flat if isinstance(a, torch.Tensor) and not isinstance(a, OnDevice) and a.dim() > 0]
    if on_device and on_cpu:
        shapes = [tuple(t.shape) for t in on_cpu]
        raise DeviceMixError(f"{func}: device tensors mixed with CPU tensors of shapes {shapes}")
    dev = kwargs.get("device")
    to_device, to_cpu = _is_device(dev), dev is not None and torch.device(dev).type == "cpu"
    if to_device and kwargs.get("generator") is not None:
        raise DeviceMixError(f"{func}: a CPU torch.Generator cannot draw on the device; draw on the CPU and move")
    if to_device:
        kwargs = dict(kwargs, device=torch.device("cpu"))
    inner_args, inner_kwargs = tree_map(lambda a: a.inner if isinstance(a, OnDevice) else a, (args, kwargs))
    out = func(*inner_args, **inner_kwargs)
    if to_cpu or not (on_device or to_device):
        return out
    if _memory[0] is not None:  # a small device: an array larger than its memory fails as CUDA's allocator fails
        big = [o.nbytes for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor) and o.nbytes > _memory[0]]
        if big:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {big[0]} bytes (emulated)")
    return tree_map(lambda o: OnDevice(o) if type(o) is torch.Tensor else o, out)


_memory: list[int | None] = [None]
"""The active `EmulatedDevice`'s memory in bytes (None: unlimited)."""


class EmulatedDevice(TorchDispatchMode):
    """While active, tensors created on `DEVICE` (factories, `.to(DEVICE)`) are `OnDevice` tensors. `memory`
    (bytes): a device tensor larger than it raises `torch.OutOfMemoryError`, as a GPU without room for it does."""

    def __init__(self, memory: int | None = None) -> None:
        super().__init__()
        self.memory = memory

    def __enter__(self):
        _memory[0] = self.memory
        return super().__enter__()

    def __exit__(self, *exc):
        _memory[0] = None
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})
