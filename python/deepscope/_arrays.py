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

import operator
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INT64_MAX",
    "SEED_MAX",
    "ArgumentTypeError",
    "View",
    "check_coordinates",
    "check_count",
    "check_finite",
    "check_seed",
    "empty",
    "flag",
    "framework_of",
    "full",
    "host_integers",
    "per_cloud_counts",
    "prepare",
    "prepare_lengths",
    "swap_last_axes",
    "to_numpy",
]

FLOAT_KINDS = ("float32", "float64")

#: Largest value an int64 holds; unsigned inputs above it are rejected rather
#: than wrapped to negative numbers by the cast to int64.
INT64_MAX = int(np.iinfo(np.int64).max)
#: Largest accepted seed: seeds are 64-bit unsigned integers.
SEED_MAX = 2**64 - 1


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
        if source == "uint64":
            _check_uint64_fits(x, framework, name)
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


# ---------------------------------------------------------------------------
# Integer arguments shared by every public function: counts, seeds, lengths.


def _check_uint64_fits(x: Any, framework: str, name: str) -> None:
    """Raises ValueError when an unsigned 64-bit array holds values > int64 max.

    The kernels index with int64; a plain cast would wrap such values to
    negative numbers.
    """
    if framework == "torch":
        # Reinterpreted as int64, exactly the values above INT64_MAX are < 0
        # (torch has no max() for uint64).
        too_big = bool((x.view(sys.modules["torch"].int64) < 0).any())
    else:
        too_big = bool((x > np.uint64(INT64_MAX)).any()) if x.size else False
    if too_big:
        raise ValueError(
            f"{name}: expected unsigned values <= {INT64_MAX} (the int64 "
            "maximum), got a larger uint64 value"
        )


def _integer_scalar(value: Any, name: str, what: str) -> int:
    """``value`` as a Python int; bools, floats and non-integers raise."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, (bool, np.bool_)) or (
        dtype is not None and "bool" in str(dtype)
    ):
        raise ArgumentTypeError(f"{name}: expected {what}, got a bool ({value!r})")
    try:
        return int(operator.index(value))
    except TypeError:
        raise ArgumentTypeError(
            f"{name}: expected {what}, got {type(value).__name__} ({value!r})"
        ) from None


def check_count(
    value: Any,
    name: str,
    low: int = 1,
    high: int | None = None,
    *,
    what: str | None = None,
) -> int:
    """A count argument (``k``, ``n_samples``, ``size``...) as a Python int.

    Accepts a Python int, a NumPy integer, or a 0-d integer array or tensor
    (anything with ``__index__``); rejects bools, floats (even ``3.0``) and
    other types.

    Args:
        value: the caller's value.
        name: the argument name for messages.
        low: the smallest allowed value.
        high: the largest allowed value, or None for no upper bound.
        what: optional meaning of ``high`` for messages, e.g.
            ``"points per cloud"``.

    Returns:
        ``int(value)``, with ``low <= value <= high``.

    Raises:
        ValueError: (also a TypeError for a wrong type) naming ``name``, the
            expected range and the value got.
    """
    count = _integer_scalar(value, name, "an integer")
    if count < low or (high is not None and count > high):
        if high is None:
            expected = f"{name} >= {low}"
        else:
            expected = f"{low} <= {name} <= {high}"
            if what:
                expected += f" ({what})"
        raise ValueError(f"{name}: expected {expected}, got {count}")
    return count


def check_seed(
    seed: Any, name: str = "seed", *, allow_none: bool = False, bits: int = 64
) -> Any:
    """A seed argument as a Python int in ``[0, 2**bits - 1]``.

    The one seed policy of the package:

    * a Python int or NumPy integer (or 0-d integer array) in
      ``[0, 2**64 - 1]`` is used as is;
    * a ``numpy.random.Generator`` is reduced to one draw from it in the
      same range (this advances the generator, so passing the same generator
      twice gives two different, still reproducible, results);
    * ``None`` is accepted only where the function documents what it means
      (``allow_none=True``; e.g. "no random start" in farthest point
      sampling) and is returned unchanged; elsewhere it is an error, since a
      silent fresh seed would make results irreproducible;
    * bools, floats, negative integers and anything else raise.

    Args:
        seed: the caller's value.
        name: the argument name for messages.
        allow_none: whether None is a documented value.
        bits: 64, or 32 where the seed goes to scikit-learn (whose
            ``random_state`` holds at most 32 bits).

    Raises:
        ValueError: (also a TypeError for a wrong type) naming ``name``, the
            accepted values and the value got.
    """
    high = 2**bits - 1
    expected = f"an integer in [0, 2**{bits} - 1] or a numpy Generator"
    if allow_none:
        expected += " or None"
    if seed is None:
        if allow_none:
            return None
        raise ArgumentTypeError(f"{name}: expected {expected}, got None")
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, high, dtype=np.uint64, endpoint=True))
    value = _integer_scalar(seed, name, expected)
    if not 0 <= value <= high:
        raise ValueError(f"{name}: expected {expected}, got {value}")
    return value


def host_integers(x: Any, name: str) -> np.ndarray:
    """Any integer array (NumPy, torch, CuPy, list) as a host int64 array.

    Raises:
        ValueError: a non-integer (or bool) dtype, or unsigned values above
            the int64 maximum, naming ``name``.
    """
    framework = framework_of(x)
    if framework == "other":
        try:
            x = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - report any conversion error
            raise ArgumentTypeError(
                f"{name}: expected integers, got {type(x).__name__} ({exc})"
            ) from None
        framework = "numpy"
    source = _dtype_name(x, framework)
    if not _is_integer(source):
        raise ArgumentTypeError(f"{name}: expected an integer dtype, got {source}")
    if source == "uint64":
        _check_uint64_fits(x, framework, name)
    return np.asarray(to_numpy(x)).astype(np.int64)


def per_cloud_counts(
    value: Any,
    name: str,
    batch: int,
    low: int = 0,
    high: np.ndarray | None = None,
    *,
    what: str = "points in cloud",
) -> np.ndarray:
    """An int or ``(B,)`` integers (one per cloud) as a host ``(B,)`` int64 array.

    Args:
        value: an int (see :func:`check_count`) or a ``(B,)`` / 0-d integer
            array of any framework and device.
        name: the argument name for messages.
        batch: the number of clouds ``B``.
        low: the smallest allowed value.
        high: optional ``(B,)`` largest allowed values (e.g. the lengths).
        what: meaning of ``high[b]`` in messages (followed by `` b``).

    Raises:
        ValueError: a wrong type, dtype or shape, or a value out of range,
            naming ``name``, the cloud, the bound and the value.
    """
    if framework_of(value) == "other" and not isinstance(value, (list, tuple)):
        counts = np.full(batch, _integer_scalar(value, name, "an integer"), np.int64)
    else:
        host = host_integers(value, name)
        if host.ndim == 0:
            host = np.full(batch, int(host), np.int64)
        if host.shape != (batch,):
            raise ValueError(
                f"{name}: expected an integer or shape ({batch},) (one per "
                f"cloud), got shape {host.shape}"
            )
        counts = host
    bad = counts < low if high is None else (counts < low) | (counts > high)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        if high is None:
            expected = f"{name} >= {low}"
        else:
            expected = f"{low} <= {name} <= {int(high[b])} ({what} {b})"
        raise ValueError(f"{name}: expected {expected}, got {int(counts[b])}")
    return counts


def prepare_lengths(
    lengths: Any,
    like: View,
    batch: int,
    n: int,
    *,
    name: str = "lengths",
    batched: bool = True,
    on_device: bool = True,
) -> tuple[View | None, np.ndarray]:
    """Validates per-cloud lengths of a padded batch.

    Args:
        lengths: None, or ``(B,)`` integers of any integer dtype, from any
            framework and device (NumPy, torch, CuPy, a list); a 0-d value
            is accepted for an unbatched input (``B == 1``).
        like: the view of the points; the device copy is made in its
            framework, on its device.
        batch: the number of clouds ``B``.
        n: the padded number of points ``N``; ``0 <= lengths[b] <= N``.
        name: the argument name for messages.
        batched: whether the points were given batched.
        on_device: False when only the host values are needed (no device
            copy is made and the view is None).

    Returns:
        ``(view, host)``: a ``(B,)`` int64 view in ``like``'s framework and on
        its device (None when ``lengths`` is None or ``on_device`` is False),
        and the ``(B,)`` int64 host values (``N`` each when ``lengths`` is
        None).

    Raises:
        ValueError: a non-integer dtype, a wrong shape, or a value outside
            ``[0, N]``, naming ``name``.
    """
    if lengths is None:
        return None, np.full(batch, n, dtype=np.int64)
    host = host_integers(lengths, name)
    if host.shape != (batch,) and not (host.shape == () and not batched):
        raise ValueError(
            f"{name}: expected shape ({batch},) (one per cloud), got {host.shape}"
        )
    host = host.reshape(batch)
    bad = (host < 0) | (host > n)
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name}: expected 0 <= {name}[b] <= {n} (points per cloud), got "
            f"{name}[{b}] = {int(host[b])}"
        )
    if not on_device:
        return None, host

    # The caller's own array when it already lives with the points, else a
    # copy of the host values in the points' framework and device.
    framework = framework_of(lengths)
    if framework == like.framework and _device_of(lengths, framework, name) == (
        like.device
    ):
        view = prepare(lengths, name, kind="int64", like=like)
        array = view.array.reshape(batch)
    else:
        array = as_array(like, host, "int64")
    return View(array, like.framework, "int64", like.device, like.stream), host
