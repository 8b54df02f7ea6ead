# ModelNet-C corruptions (seven kinds, five levels), corrupted test sets, HDF5 I/O.
# SPDX-License-Identifier: MIT
"""The seven ModelNet-C corruptions (Ren, Pan and Liu, ICML 2022).

Generation parameters follow the reference code (``jiawei-ren/ModelNet-C``,
``build_modelnetc/corrupt_utils.py``; identical in PointCloud-C) where it
differs from the documentation (pointcloud-c.github.io): the code drops
``0.625`` of the points at ``dropout_global`` level 4 (documented: 0.675) and
draws the number of local clusters from ``1..7`` (``randint(1, 8)``;
documented: 1..8).

Randomness: every draw is made on the host by NumPy's PCG64 from the stream
``(seed, kind, level, sample)``, so each cloud of a batch is corrupted
independently of the others, results depend only on ``seed`` and the input,
and CPU and CUDA receive the same draws. The streams differ from the
reference's single global ``np.random`` stream, so a self-generated set is a
different sample of the same distribution as the official files (whose seed
was not published): report numbers on the official HDF5 files
(:func:`load_modelnet_c`) when comparing with published tables.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = [
    "CORRUPTIONS",
    "LEVELS",
    "Corrupted",
    "corrupt",
    "corrupt_dataset",
    "load_modelnet_c",
    "save_modelnet_c",
]

Array = Any

#: The seven ModelNet-C corruptions, in the official table order.
CORRUPTIONS = (
    "scale",
    "jitter",
    "rotate",
    "dropout_global",
    "dropout_local",
    "add_global",
    "add_local",
)
#: Severity levels 0..4.
LEVELS = (0, 1, 2, 3, 4)

_SCALE = (1.6, 1.7, 1.8, 1.9, 2.0)
_DROP_RATE = (0.25, 0.375, 0.5, 0.625, 0.75)
_SIGMA_RANGE = (0.075, 0.125)


class Corrupted(NamedTuple):
    """Corrupted clouds, padded.

    Attributes:
        points: (B, M, 3) corrupted clouds in the input's framework, device
            and float dtype; (M, 3) for an unbatched input. Every corruption
            of a batch of equal-size clouds gives clouds of one size ``M``
            (``N`` for scale/jitter/rotate, ``int(N * (1 - rate))`` for
            dropout_global, ``N - 100 (l + 1)`` for dropout_local,
            ``N + 10 (l + 1)`` for add_global, ``N + 100 (l + 1)`` for
            add_local), so there is no padding today; ``lengths`` is kept for
            forward compatibility with ragged inputs.
        lengths: (B,) int64 valid points per cloud (all ``M``); () unbatched.
    """

    points: Array
    lengths: Array


def _sizes(kind: str, level: int, n: int) -> int:
    """Points per corrupted cloud of ``n`` points."""
    if kind == "dropout_global":
        return int(n * (1 - _DROP_RATE[level]))
    if kind == "dropout_local":
        return n - 100 * (level + 1)
    if kind == "add_global":
        return n + 10 * (level + 1)
    if kind == "add_local":
        return n + 100 * (level + 1)
    return n


def _rng(seed: int, kind: str, level: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([seed, CORRUPTIONS.index(kind), level, sample])


def _check_args(points: Any, kind: Any, level: Any, seed: Any) -> tuple[Any, bool]:
    """Validates the arguments; returns (torch (B, N, 3) tensor, from_numpy)."""
    import torch

    if not isinstance(kind, str) or kind not in CORRUPTIONS:
        raise ValueError(
            f"kind: expected one of {', '.join(CORRUPTIONS)}, got {kind!r}"
        )
    check_count(level, "level", 0, 4)
    check_seed(seed)

    from_numpy = not torch.is_tensor(points)
    if from_numpy:
        array = np.asarray(points)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"points: expected a float dtype, got {array.dtype}")
        tensor = torch.from_numpy(
            np.array(array, dtype=np.result_type(array, np.float32))
        )
    else:
        if not points.dtype.is_floating_point:
            raise ValueError(f"points: expected a float dtype, got {points.dtype}")
        tensor = points.detach()
        if tensor.dtype in (torch.float16, torch.bfloat16):
            tensor = tensor.float()
    if tensor.ndim not in (2, 3) or tensor.shape[-1] != 3:
        raise ValueError(
            f"points: expected (B, N, 3) or (N, 3), got shape {tuple(tensor.shape)}"
        )
    if tensor.ndim == 3 and tensor.shape[0] == 0:
        raise ValueError("points: expected at least one cloud, got shape (0, N, 3)")
    if tensor.shape[-2] < 1:
        raise ValueError("points: expected at least one point per cloud, got 0")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("points: expected finite coordinates, got NaN or inf")
    return tensor, from_numpy


def corrupt(points: Array, kind: str, level: int, seed: int = 0) -> Corrupted:
    """Applies one ModelNet-C corruption at one severity level to every cloud.

    Parameters (level ``l`` in 0..4, as in the reference code):

    * ``scale``: per-axis factors ``U(1/s, s)``, ``s = 1.6 + 0.1 l``, then
      re-normalisation (subtract the centroid, divide by the largest norm).
    * ``jitter``: ``x += sigma N(0, 1)`` per coordinate, ``sigma = 0.01 (l +
      1)``; no clipping.
    * ``rotate``: angles ``U(-t, t)`` about x, y, z with ``t = (pi / 6) (l +
      1) / 5``; ``R = Rz Ry Rx`` applied to row vectors (``points @ R``).
    * ``dropout_global``: keeps a uniformly random ``int(N (1 - rate))``
      points, ``rate = 0.25, 0.375, 0.5, 0.625, 0.75`` (code; the
      documentation says 0.675 at level 4).
    * ``dropout_local``: ``100 (l + 1)`` points in ``C ~ U{1..7}`` clusters
      (code; documented 1..8), sizes by a uniform multinomial assignment;
      per cluster a uniformly random remaining point is the centre and its
      ``K_i`` nearest remaining points (itself included) are dropped.
    * ``add_global``: ``10 (l + 1)`` points uniform in the unit ball
      (``r = U^(1/3)``, ``cos(theta) ~ U(-1, 1)``, ``phi ~ U(0, 2 pi)``)
      appended.
    * ``add_local``: ``100 (l + 1)`` points in ``C ~ U{1..7}`` clusters around
      distinct random input points, ``centre + sigma_i N(0, I)`` with
      ``sigma_i ~ U(0.075, 0.125)``; points with ``r^2 > 1`` are divided by
      ``r^2`` (the reference's behaviour, not a projection onto the sphere);
      appended after the input points.

    Differences from the reference that do not change the distribution: the
    kept points of ``dropout_global`` / ``dropout_local`` stay in input order
    and ``add_local`` does not shuffle the input (the reference returns
    shuffled or distance-sorted clouds); ``add_local`` also works when
    ``100 (l + 1) > N`` (the reference needs ``N >= 100 (l + 1)``).

    Args:
        points: (B, N, 3) or (N, 3) float clouds, NumPy (returned as NumPy,
            float32 or float64) or torch on any device (computed there,
            float16/bfloat16 upcast to float32). Not modified.
        kind: one of :data:`CORRUPTIONS`.
        level: severity 0..4.
        seed: integer in [0, 2**64 - 1] (or a numpy Generator, drawn from
            once); cloud ``b`` uses the stream ``(seed, kind,
            level, b)``.

    Returns:
        :class:`Corrupted` ``(points, lengths)``.

    Raises:
        ValueError: an unknown kind, a level outside 0..4, a negative seed,
            a wrong shape or dtype, NaN/inf, an empty cloud, or
            ``dropout_local`` asking to drop all the points.
    """
    import torch

    seed = check_seed(seed)
    tensor, from_numpy = _check_args(points, kind, level, seed)
    level = int(level)
    batched = tensor.ndim == 3
    x = tensor if batched else tensor[None]
    out = _apply(x, kind, level, seed, 0)
    B = x.shape[0]
    lengths = torch.full((B,), out.shape[1], dtype=torch.int64, device=out.device)
    if not batched:
        out, lengths = out[0], lengths[0]
    if from_numpy:
        return Corrupted(out.numpy(), lengths.numpy())
    return Corrupted(out, lengths)


def _host(values: np.ndarray, like: Any) -> Any:
    import torch

    return torch.as_tensor(values, dtype=like.dtype).to(like.device)


def _normalize(x: Any) -> Any:
    x = x - x.mean(dim=1, keepdim=True)
    radius = x.norm(dim=-1).amax(dim=1, keepdim=True)
    return x / radius.clamp_min(1e-30)[..., None]


def _scale(x: Any, level: int, rngs: list) -> Any:
    s = _SCALE[level]
    factors = np.stack([rng.uniform(1.0 / s, s, size=3) for rng in rngs])
    return _normalize(x * _host(factors, x)[:, None, :])


def _jitter(x: Any, level: int, rngs: list) -> Any:
    N = x.shape[1]
    noise = np.stack([rng.standard_normal((N, 3)) for rng in rngs])
    return x + 0.01 * (level + 1) * _host(noise, x)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """(B, 3) angles about x, y, z -> (B, 3, 3) float64 ``Rz @ Ry @ Rx``."""
    c, s = np.cos(angles), np.sin(angles)
    B = len(angles)
    one, zero = np.ones(B), np.zeros(B)
    rx = np.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]])
    ry = np.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]])
    rz = np.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one])
    rx, ry, rz = (m.T.reshape(B, 3, 3) for m in (rx, ry, rz))
    return rz @ (ry @ rx)


def _rotate(x: Any, level: int, rngs: list) -> Any:
    clip = math.pi / 6 / 5 * (level + 1)
    angles = np.stack([rng.uniform(-clip, clip, size=3) for rng in rngs])
    return x @ _host(_rotation(angles.reshape(-1, 3)), x)


def _dropout_global(x: Any, level: int, rngs: list) -> Any:
    import torch

    B, N, _ = x.shape
    keep = _sizes("dropout_global", level, N)
    chosen = np.stack([np.sort(rng.permutation(N)[:keep]) for rng in rngs])
    index = torch.as_tensor(chosen, device=x.device)
    return torch.gather(x, 1, index[..., None].expand(B, keep, 3))


def _cluster_sizes(rng: np.random.Generator, total: int) -> np.ndarray:
    """C ~ U{1..7} clusters; sizes of a uniform assignment of ``total`` points."""
    clusters = int(rng.integers(1, 8))
    return np.bincount(rng.integers(clusters, size=total), minlength=clusters)


def _dropout_local(x: Any, level: int, rngs: list) -> Any:
    import torch

    B, N, _ = x.shape
    total = 100 * (level + 1)
    sizes = [_cluster_sizes(rng, total) for rng in rngs]
    steps = max(len(s) for s in sizes)
    device = x.device
    alive = torch.ones(B, N, dtype=torch.bool, device=device)
    remaining = np.full(B, N, dtype=np.int64)
    for step in range(steps):
        k = np.array([s[step] if step < len(s) else 0 for s in sizes], np.int64)
        # The centre: a uniformly random remaining point (its rank among them).
        rank = np.array(
            [rng.integers(remaining[b]) if k[b] else 0 for b, rng in enumerate(rngs)]
        )
        position = torch.cumsum(alive.long(), dim=1) - 1
        hit = alive & (position == torch.as_tensor(rank, device=device)[:, None])
        centre = torch.gather(x, 1, hit.long().argmax(1)[:, None, None].expand(B, 1, 3))
        # Drop its k nearest remaining points (itself included; ties by index).
        diff = x.double() - centre.double()
        dist = (diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]) + diff[
            ..., 2
        ] * diff[..., 2]
        dist = dist.masked_fill(~alive, math.inf)
        order = torch.sort(dist, dim=1, stable=True).indices
        ranks = torch.empty_like(order).scatter_(
            1, order, torch.arange(N, device=device).expand(B, N)
        )
        alive &= ranks >= torch.as_tensor(k, device=device)[:, None]
        remaining -= k
    keep = N - total
    return x[alive].reshape(B, keep, 3)


def _add_global(x: Any, level: int, rngs: list) -> Any:
    import torch

    n = 10 * (level + 1)
    added = []
    for rng in rngs:
        radius = rng.uniform(0.0, 1.0, n) ** (1.0 / 3.0)
        theta = np.arccos(rng.uniform(-1.0, 1.0, n))
        phi = rng.uniform(0.0, 2.0 * np.pi, n)
        added.append(
            np.stack(
                [
                    radius * np.sin(theta) * np.cos(phi),
                    radius * np.sin(theta) * np.sin(phi),
                    radius * np.cos(theta),
                ],
                axis=1,
            )
        )
    return torch.cat([x, _host(np.stack(added), x)], dim=1)


def _add_local(x: Any, level: int, rngs: list) -> Any:
    import torch

    B, N, _ = x.shape
    total = 100 * (level + 1)
    owners, offsets = [], []
    for rng in rngs:
        sizes = _cluster_sizes(rng, total)
        clusters = len(sizes)
        # Distinct random centres (the reference: first C points after a
        # shuffle); clouds with fewer points than clusters reuse points.
        centres = rng.permutation(N)[:clusters]
        if len(centres) < clusters:
            centres = rng.integers(N, size=clusters)
        sigma = rng.uniform(*_SIGMA_RANGE, size=clusters)
        owners.append(np.repeat(centres, sizes))
        offsets.append(
            np.repeat(sigma, sizes)[:, None] * rng.standard_normal((total, 3))
        )
    index = torch.as_tensor(np.stack(owners), device=x.device)
    added = torch.gather(x, 1, index[..., None].expand(B, total, 3))
    added = added + _host(np.stack(offsets), x)
    r2 = (added**2).sum(-1, keepdim=True)
    added = torch.where(r2 > 1, added / r2, added)
    return torch.cat([x, added], dim=1)


_APPLY = {
    "scale": _scale,
    "jitter": _jitter,
    "rotate": _rotate,
    "dropout_global": _dropout_global,
    "dropout_local": _dropout_local,
    "add_global": _add_global,
    "add_local": _add_local,
}


def corrupt_dataset(
    points: Array,
    *,
    kinds: tuple[str, ...] | list[str] = CORRUPTIONS,
    levels: tuple[int, ...] | list[int] = LEVELS,
    seed: int = 0,
    chunk: int = 1024,
) -> dict[str, Array]:
    """Builds a ModelNet-C style corrupted test set from clean clouds.

    Args:
        points: (S, N, 3) float clouds (NumPy or torch); the clean test set.
        kinds: corruptions to apply (default all seven).
        levels: severity levels (default 0..4).
        seed: base seed; cloud ``i`` of ``kind_level`` uses the stream
            ``(seed, kind, level, i)`` whatever ``chunk`` is.
        chunk: clouds corrupted per call (bounds the host noise buffers).

    Returns:
        ``{"clean": points, "scale_0": (S, M, 3), ...}``, keyed like the
        official files (``{kind}_{level}``), in the input's framework; the
        labels are those of the clean set.
    """
    import torch

    chunk = check_count(chunk, "chunk")
    for name, values in (("kinds", kinds), ("levels", levels)):
        if isinstance(values, (str, bytes)):
            raise ValueError(f"{name}: expected a sequence, got the string {values!r}")
    # One seed for every chunk (a Generator is drawn from once, here).
    seed = check_seed(seed)
    out: dict[str, Array] = {"clean": points}
    S = len(points)
    if S == 0:
        raise ValueError("points: expected at least one cloud, got shape (0, N, 3)")
    is_torch = torch.is_tensor(points)
    for kind in kinds:
        for level in levels:
            parts = []
            for first in range(0, S, chunk):
                part = _corrupt_offset(
                    points[first : first + chunk], kind, level, seed, first
                )
                parts.append(part)
            if is_torch:
                out[f"{kind}_{level}"] = torch.cat(parts)
            else:
                out[f"{kind}_{level}"] = np.concatenate(parts)
    return out


def _corrupt_offset(
    points: Array, kind: str, level: int, seed: int, first: int
) -> Array:
    """``corrupt`` of (S, N, 3) clouds with sample streams numbered from ``first``."""
    tensor, from_numpy = _check_args(points, kind, level, seed)
    if tensor.ndim != 3:
        raise ValueError(f"points: expected (S, N, 3), got {tuple(tensor.shape)}")
    out = _apply(tensor, kind, int(level), int(seed), first)
    return out.numpy() if from_numpy else out


def _apply(x: Any, kind: str, level: int, seed: int, first: int) -> Any:
    """Corrupts (B, N, 3) torch clouds; cloud b uses stream first + b."""
    B, N, _ = x.shape
    if kind == "dropout_local" and _sizes(kind, level, N) < 1:
        raise ValueError(
            f"points: dropout_local level {level} drops {100 * (level + 1)} points "
            f"and needs clouds of more than that, got N = {N}"
        )
    rngs = [_rng(seed, kind, level, first + b) for b in range(B)]
    return _APPLY[kind](x, level, rngs)


def save_modelnet_c(
    folder: str | os.PathLike[str], dataset: dict[str, Array], labels: Array
) -> Path:
    """Writes a corrupted set as ModelNet-C HDF5 files (``{name}.h5``).

    Each file holds ``data`` (S, M, 3) float32 and ``label`` (S, 1) int64,
    like the official ``modelnet_c`` folder. Needs h5py.
    """
    try:
        import h5py
    except ImportError as error:
        raise ImportError("save_modelnet_c needs h5py (pip install h5py)") from error
    from deepscope._arrays import to_numpy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    label_array = np.asarray(to_numpy(labels)).reshape(-1, 1).astype(np.int64)
    for name, points in dataset.items():
        with h5py.File(folder / f"{name}.h5", "w") as handle:
            handle["data"] = np.asarray(to_numpy(points), dtype=np.float32)
            handle["label"] = label_array
    return folder


def load_modelnet_c(
    root: str | os.PathLike[str],
    names: list[str] | tuple[str, ...] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads the official ModelNet-C HDF5 files.

    Args:
        root: the ``modelnet_c`` folder (``clean.h5``, ``scale_0.h5``, ...,
            ``add_local_4.h5``, each with ``data`` (S, M, 3) and ``label``
            (S, 1)), or a folder containing ``modelnet_c``.
        names: files to read without ``.h5`` (default: every
            ``clean`` / ``{kind}_{level}`` file present).

    Returns:
        ``{name: (points (S, M, 3) float32, labels (S,) int64)}`` in the
        official order (clean first).

    Raises:
        FileNotFoundError: no such folder, a requested file is missing, or no
            ModelNet-C file is present.
        ImportError: h5py is not installed.
    """
    folder = Path(root)
    if (folder / "modelnet_c").is_dir():
        folder = folder / "modelnet_c"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    official = ["clean"] + [f"{k}_{lvl}" for k in CORRUPTIONS for lvl in LEVELS]
    if names is None:
        names = [n for n in official if (folder / f"{n}.h5").is_file()]
        if not names:
            raise FileNotFoundError(f"{folder}: no ModelNet-C files (clean.h5, ...)")
    pattern = re.compile(r"^(clean|[a-z_]+_[0-4])$")
    for name in names:
        if not pattern.match(name):
            raise ValueError(f"names: expected 'clean' or 'kind_level', got {name!r}")
        if not (folder / f"{name}.h5").is_file():
            raise FileNotFoundError(f"{folder / (name + '.h5')}: no such file")
    try:
        import h5py
    except ImportError as error:
        raise ImportError("load_modelnet_c needs h5py (pip install h5py)") from error
    out = {}
    for name in names:
        with h5py.File(folder / f"{name}.h5", "r") as handle:
            data = np.asarray(handle["data"], dtype=np.float32)
            label = np.asarray(handle["label"]).reshape(-1).astype(np.int64)
        if data.ndim != 3 or data.shape[-1] != 3 or len(data) != len(label):
            raise ValueError(
                f"{name}.h5: expected data (S, M, 3) and label (S, 1), got "
                f"{data.shape} and {label.shape}"
            )
        out[name] = (data, label)
    return out
