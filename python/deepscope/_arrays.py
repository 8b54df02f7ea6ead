# Array interop: NumPy, torch and CuPy in; the same framework and device out.
# SPDX-License-Identifier: MIT
"""Framework-neutral views of the caller's arrays for the native kernels.

Every public kernel follows the same four steps:

1. :func:`prepare` validates an input and returns a :class:`View`: a
   C-contiguous array in a kernel dtype, in the caller's framework and on the
   caller's device. The caller's array is never written to; a copy is made
   only when the dtype or layout requires one.
2. Extra validation (finiteness, shapes, counts) happens on the view.
3. :func:`empty` / :func:`full` allocate outputs with the same framework on
   the same device.
4. Raw pointers, sizes, the device index and the caller's current CUDA stream
   go to C++, which releases the GIL and launches on that stream.

torch and CuPy are imported lazily; only NumPy is required.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ArgumentTypeError",
    "View",
    "check_coordinates",
    "flag",
    "swap_last_axes",
    "check_finite",
    "empty",
    "framework_of",
    "full",
    "prepare",
    "to_numpy",
]

FLOAT_KINDS = ("float32", "float64")


class ArgumentTypeError(ValueError, TypeError):
    """An argument has an unsupported type (both a ValueError and a TypeError)."""


@dataclass(frozen=True)
class View:
    """A prepared, contiguous input ready for a kernel.

    Attributes:
        array: the contiguous array (the caller's own when no copy was needed).
        framework: ``"numpy"``, ``"torch"`` or ``"cupy"``.
        dtype: kernel dtype name, e.g. ``"float32"`` or ``"int64"``.
        device: ``-1`` for the CPU, otherwise the CUDA device index.
        stream: the caller's current CUDA stream as an integer (0 on CPU).
    """

    array: Any
    framework: str
    dtype: str
    device: int
    stream: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    @property
    def ptr(self) -> int:
        return data_ptr(self.array)

    @property
    def is_cuda(self) -> bool:
        return self.device >= 0


def framework_of(x: Any) -> str:
    """Names the array framework of ``x`` without importing any framework."""
    if isinstance(x, np.ndarray):
        return "numpy"
    module = type(x).__module__.split(".")[0]
    if module == "torch" and _is_torch_tensor(x):
        return "torch"
    if module == "cupy":
        return "cupy"
    return "other"


def _is_torch_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _dtype_name(x: Any, framework: str) -> str:
    if framework == "torch":
        return str(x.dtype).removeprefix("torch.")
    return np.dtype(x.dtype).name


def _device_of(x: Any, framework: str, name: str) -> int:
    if framework == "numpy":
        return -1
    if framework == "cupy":
        return int(x.device.id)
    kind = x.device.type
    if kind == "cpu":
        return -1
    if kind == "cuda":
        return int(x.device.index if x.device.index is not None else 0)
    raise ValueError(
        f"{name}: expected a CPU or CUDA tensor, got a tensor on device '{x.device}'"
    )


def current_stream(framework: str, device: int) -> int:
    """The caller's current CUDA stream on ``device`` as an integer."""
    if device < 0:
        return 0
    if framework == "torch":
        import torch

        return int(torch.cuda.current_stream(device).cuda_stream)
    if framework == "cupy":
        import cupy

        with cupy.cuda.Device(device):
            return int(cupy.cuda.get_current_stream().ptr)
    return 0


def data_ptr(a: Any) -> int:
    """Address of the first element of a contiguous array."""
    framework = framework_of(a)
    if framework == "numpy":
        return int(a.ctypes.data)
    if framework == "torch":
        return int(a.data_ptr())
    return int(a.data.ptr)


def _is_floating(dtype: str) -> bool:
    return dtype in ("float16", "bfloat16", "float32", "float64")


def _is_integer(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def prepare(
    x: Any,
    name: str,
    *,
    kind: str = "float",
    ndim: tuple[int, ...] | None = None,
    like: View | None = None,
) -> View:
    """Validates ``x`` and returns a contiguous :class:`View` of it.

    Args:
        x: a NumPy array, torch tensor, CuPy array, or anything
            ``numpy.asarray`` accepts (lists become NumPy arrays).
        name: the argument name used in error messages.
        kind: ``"float"`` keeps float32 and float64 and upcasts float16 and
            bfloat16 to float32 (integers are rejected); ``"int64"`` casts any
            integer dtype to int64 (floats are rejected).
        ndim: allowed numbers of dimensions.
        like: when given, ``x`` must share its framework and device.

    Raises:
        ValueError: wrong rank, dtype, framework or device, naming ``name``.
    """
    framework = framework_of(x)
    if framework == "other":
        if x is None or isinstance(x, (str, bytes, dict, set)):
            raise ArgumentTypeError(
                f"{name}: expected an array (NumPy, torch or CuPy), got "
                f"{type(x).__name__}"
            )
        try:
            x = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - report any conversion error
            raise ArgumentTypeError(
                f"{name}: expected an array, got {type(x).__name__} ({exc})"
            ) from None
        if x.dtype == object:
            raise ArgumentTypeError(f"{name}: expected a numeric array, got objects")
        if kind == "float" and (x.dtype.kind in "iu"):
            # Python lists of integers are coordinates too; arrays are not cast.
            x = x.astype(np.float64)
        framework = "numpy"

    if ndim is not None and x.ndim not in ndim:
        expected = " or ".join(str(d) for d in ndim)
        raise ValueError(
            f"{name}: expected {expected} dimensions, got {x.ndim} "
            f"(shape {tuple(x.shape)})"
        )

    device = _device_of(x, framework, name)
    if like is not None:
        if framework != like.framework:
            raise ValueError(
                f"{name}: expected a {like.framework} array like the other "
                f"inputs, got {framework}"
            )
        if device != like.device:
            raise ValueError(
                f"{name}: expected device {_device_str(like.device)} like the "
                f"other inputs, got {_device_str(device)}"
            )

    source = _dtype_name(x, framework)
    if kind == "float":
        if not _is_floating(source):
            raise ValueError(
                f"{name}: expected a floating dtype (float16, bfloat16, "
                f"float32 or float64), got {source}"
            )
        target = source if source in FLOAT_KINDS else "float32"
    elif kind == "int64":
        if not _is_integer(source):
            raise ValueError(f"{name}: expected an integer dtype, got {source}")
        target = "int64"
    else:  # pragma: no cover - internal misuse
        raise AssertionError(f"unknown kind {kind!r}")

    array = _contiguous(x, framework, target)
    stream = current_stream(framework, device)
    return View(array, framework, target, device, stream)


def flag(value: Any, name: str) -> bool:
    """``value`` as a bool; anything but True/False raises ValueError.

    Keeps a mistyped flag (``channels_first="no"``) from being read as True.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ArgumentTypeError(f"{name}: expected True or False, got {value!r}")


def swap_last_axes(x: Any, name: str) -> Any:
    """A view of ``x`` with its last two axes swapped (channels-first input).

    Raises:
        ValueError: ``x`` has fewer than 2 dimensions (naming ``name``).
    """
    framework = framework_of(x)
    if framework == "other":
        x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"{name}: expected 2 or 3 dimensions, got {x.ndim} (shape {tuple(x.shape)})"
        )
    if framework == "torch":
        return x.transpose(-1, -2)
    return x.swapaxes(-1, -2)


def _device_str(device: int) -> str:
    return "cpu" if device < 0 else f"cuda:{device}"


def _contiguous(x: Any, framework: str, dtype: str) -> Any:
    """A C-contiguous array of ``dtype``; ``x`` itself when already so."""
    if framework == "numpy":
        return np.ascontiguousarray(x, dtype=dtype)
    if framework == "torch":
        import torch

        t = x.detach()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        target = getattr(torch, dtype)
        if t.dtype != target:
            t = t.to(target)
        return t.contiguous()
    import cupy

    return cupy.ascontiguousarray(x, dtype=dtype)


def empty(like: View, shape: tuple[int, ...], dtype: str) -> Any:
    """An uninitialised array in ``like``'s framework and device."""
    if like.framework == "numpy":
        return np.empty(shape, dtype=dtype)
    if like.framework == "torch":
        import torch

        device = "cpu" if like.device < 0 else f"cuda:{like.device}"
        return torch.empty(shape, dtype=getattr(torch, dtype), device=device)
    import cupy

    with cupy.cuda.Device(like.device):
        return cupy.empty(shape, dtype=dtype)


def full(like: View, shape: tuple[int, ...], value: Any, dtype: str) -> Any:
    """An array filled with ``value`` in ``like``'s framework and device."""
    out = empty(like, shape, dtype)
    out.fill(value) if like.framework != "torch" else out.fill_(value)
    return out


def as_array(like: View, values: Any, dtype: str) -> Any:
    """Host values (NumPy or a list) moved into ``like``'s framework/device."""
    host = np.ascontiguousarray(np.asarray(values, dtype=dtype))
    if like.framework == "numpy":
        return host
    if like.framework == "torch":
        import torch

        device = "cpu" if like.device < 0 else f"cuda:{like.device}"
        return torch.from_numpy(host).to(device)
    import cupy

    with cupy.cuda.Device(like.device):
        return cupy.asarray(host)


def to_numpy(a: Any) -> np.ndarray:
    """A host NumPy copy or view of any supported array (for small arrays)."""
    framework = framework_of(a)
    if framework == "numpy":
        return a
    if framework == "torch":
        return a.detach().cpu().numpy()
    if framework == "cupy":
        return a.get()
    return np.asarray(a)


def check_finite(view: View, name: str) -> None:
    """Raises ValueError when ``view`` holds NaN or an infinity."""
    a = view.array
    if view.framework == "numpy":
        ok = bool(np.isfinite(a).all())
    elif view.framework == "torch":
        import torch

        ok = bool(torch.isfinite(a).all())
    else:
        import cupy

        ok = bool(cupy.isfinite(a).all())
    if not ok:
        raise ValueError(f"{name}: expected finite values, found NaN or inf")


#: Largest coordinate magnitude whose squared distances stay finite in float64
#: (a squared difference of 2e150 in each of up to 1e6 dimensions is < 1e308).
COORDINATE_MAX = 1e150
#: Smallest extent whose squared distances do not underflow in float64.
COORDINATE_MIN = 1e-150


def check_coordinates(view: View, name: str, lengths: np.ndarray | None = None) -> None:
    """Raises ValueError unless the valid points of ``view`` are usable.

    Usable means finite, and within the range where squared distances
    computed in float64 neither overflow (|x| <= 1e150) nor all underflow
    (a cloud whose largest nonzero |x| is below 1e-150). Outside it a
    distance kernel would silently return a wrong order.

    Args:
        view: points ``(N, D)`` or ``(B, N, D)``.
        name: the argument name for messages.
        lengths: optional ``(B,)`` host integers; points at or past
            ``lengths[b]`` are padding and are not checked.
    """
    a = view.array
    if view.framework == "torch":
        peak = a.abs().amax(dim=-1) if a.numel() else a.sum(dim=-1)
    elif view.framework == "cupy":
        import cupy

        peak = cupy.abs(a).max(axis=-1) if a.size else a.sum(axis=-1)
    else:
        peak = np.abs(a).max(axis=-1) if a.size else a.sum(axis=-1)
    if lengths is None and int(np.prod(peak.shape)) > 0:
        peak = peak.max()  # one number leaves the device (NaN propagates)
    peak = np.asarray(to_numpy(peak), dtype=np.float64)
    if lengths is not None:
        peak = peak.reshape(len(lengths), -1)
        valid = np.arange(peak.shape[1])[None, :] < np.asarray(lengths)[:, None]
        peak = peak[valid]
    peak = peak.ravel()
    if peak.size == 0:
        return
    if not np.isfinite(peak).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    largest = float(peak.max())
    if largest > COORDINATE_MAX:
        raise ValueError(
            f"{name}: expected coordinates with |x| <= {COORDINATE_MAX:g} (float64 "
            f"squared distances overflow beyond), got {largest:.3g}; rescale the "
            "points"
        )
    if 0.0 < largest < COORDINATE_MIN:
        raise ValueError(
            f"{name}: expected coordinates with |x| >= {COORDINATE_MIN:g} somewhere "
            f"(float64 squared distances underflow to 0 below), got at most "
            f"{largest:.3g}; rescale the points"
        )
