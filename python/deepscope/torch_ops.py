# torch custom operators over the kernels, for torch.compile without graph breaks.
# SPDX-License-Identifier: MIT
"""deepscope kernels as ``torch.ops.deepscope.*`` custom operators.

Importing this module (it needs torch >= 2.4) registers the operators with
:func:`torch.library.custom_op` and gives each a fake (meta) implementation,
so ``torch.compile(..., fullgraph=True)`` can trace models that call them:
the compiler sees an opaque operator with known output shapes and dtypes,
and calls the real kernel at run time. The extension is still not linked
against libtorch: the real implementations call deepscope's Python API on
the tensors (CPU or CUDA, on the current stream).

Covered: farthest point sampling, kNN, ball query, the EPiC samplers
(patches, curves, random subsets, and :func:`partial_clouds` built from
them), point importance, and the method kernels on inference paths: exact
feature kNN (:mod:`deepscope.graph`), conformity (:mod:`deepscope.embedding`)
and the fused CMD assignment + fit (:mod:`deepscope.dynamics`).

Every output has a static shape, a function of the input shapes and integer
arguments only (``(B, K)`` for K samples, ``(B, M, k)`` for k neighbours,
...), never of the data: padding is ``-1`` with a ``counts`` output. Where
the plain API returns a data-dependent width (``adaptive_subset``), the
operator pads to the number of points instead.

Use the Python wrappers of this module (same names and defaults as the
plain API; they return the same NamedTuples) or the raw operators
``torch.ops.deepscope.<name>``. The operators carry no autograd formula:
indices and counts are not differentiable, and gathering coordinates with
:func:`gather_points` (plain torch ops) keeps gradients flowing to the
points.
"""

from __future__ import annotations

import torch
from torch import Tensor

if not hasattr(torch.library, "custom_op"):
    raise ImportError(
        f"deepscope.torch_ops needs torch >= 2.4 (torch.library.custom_op); "
        f"found torch {torch.__version__}"
    )

from deepscope import importance as _importance
from deepscope import pointcloud as _pointcloud
from deepscope._arrays import (
    INT64_MAX,
    SEED_MAX,
    _integer_scalar,
    check_seed,
    flag,
)
from deepscope.dynamics import AssignFit
from deepscope.importance import ImportanceStats
from deepscope.pointcloud import FPSResult, KNNResult, PartialResult

__all__ = [
    "adaptive_subset",
    "assign_and_fit",
    "ball_query",
    "conformity",
    "critical_counts",
    "farthest_point_sample",
    "feature_knn",
    "feature_norms",
    "gather_points",
    "importance_stats",
    "knn",
    "knn_patches",
    "least_important",
    "normalized_entropy",
    "partial_clouds",
    "random_subsets",
    "random_walk_curves",
]

_LIB = "deepscope"


def _float_out(dtype: torch.dtype) -> torch.dtype:
    """The kernels' float output dtype: float64 stays, the rest is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _batch_dims(x: Tensor, name: str, channels_first: bool = False):
    """(B, N, D) of a (B, N, D) or (N, D) tensor (before validation)."""
    if x.dim() == 3:
        B, a, b = x.shape
    elif x.dim() == 2:
        B, (a, b) = None, x.shape
    else:
        raise ValueError(
            f"{name}: expected 2 or 3 dimensions, got {x.dim()} (shape "
            f"{tuple(x.shape)})"
        )
    N, D = (b, a) if channels_first else (a, b)
    return B, N, D


def _shape(B, *rest) -> tuple:
    return tuple(rest) if B is None else (B, *rest)


def _flags(*, allow_none: bool = False, **flags: object) -> None:
    """Boolean arguments, checked before the schema sees them.

    The schema would read ``1`` as True silently and report a string as a
    RuntimeError; anything but True / False (or None where allowed) raises a
    ValueError naming the argument here, as in the plain API.
    """
    for name, value in flags.items():
        if value is None and allow_none:
            continue
        flag(value, name)


def _count(value: object, name: str) -> object:
    """An integer argument of an operator, checked before the schema sees it.

    The schema would turn ``True`` into 1 silently and report a float as a
    RuntimeError; bools and non-integers raise a ValueError naming ``name``
    here, as in the plain API. Symbolic ints pass (range checks run inside).
    """
    if isinstance(value, torch.SymInt):
        return value
    return _integer_scalar(value, name, "an integer")


def _to_op_seed(seed: object) -> int:
    """A validated seed in [0, 2**64) as the signed 64-bit int an op schema holds."""
    value = check_seed(seed)
    return value - 2**64 if value > INT64_MAX else value


def _from_op_seed(seed: int) -> int:
    """The unsigned seed back from :func:`_to_op_seed`."""
    return seed & SEED_MAX


def _fresh(outputs, *inputs: Tensor | None) -> tuple[Tensor, ...]:
    """Outputs that share no storage with the inputs or with each other.

    Custom operators must not return views of their inputs; the plain API
    may (e.g. the anchors it was given), so those outputs are cloned.
    """
    seen = {
        x.untyped_storage().data_ptr()
        for x in inputs
        if isinstance(x, Tensor) and x.numel() > 0
    }
    fresh = []
    for t in outputs:
        ptr = t.untyped_storage().data_ptr() if t.numel() > 0 else None
        if ptr in seen:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr() if t.numel() > 0 else None
        if ptr is not None:
            seen.add(ptr)
        fresh.append(t)
    return tuple(fresh)


# ----------------------------------------------------------------------------
# Farthest point sampling


@torch.library.custom_op(f"{_LIB}::farthest_point_sample", mutates_args=())
def _fps_op(
    points: Tensor,
    n_samples: int,
    lengths: Tensor | None,
    start_index: int,
    allow_fewer: bool,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.farthest_point_sample(
        points,
        n_samples,
        lengths=lengths,
        start_index=start_index,
        allow_fewer=allow_fewer,
        channels_first=channels_first,
    )
    return _fresh(result, points, lengths)


@_fps_op.register_fake
def _(points, n_samples, lengths, start_index, allow_fewer, channels_first):
    B, _, _ = _batch_dims(points, "points", channels_first)
    return (
        points.new_empty(_shape(B, n_samples), dtype=torch.int64),
        points.new_empty(_shape(B, n_samples), dtype=_float_out(points.dtype)),
        points.new_empty(_shape(B), dtype=torch.int64),
    )


def farthest_point_sample(
    points: Tensor,
    n_samples: int,
    *,
    lengths: Tensor | None = None,
    start_index: int = 0,
    allow_fewer: bool = False,
    channels_first: bool = False,
) -> FPSResult:
    """:func:`deepscope.pointcloud.farthest_point_sample` as a torch operator.

    ``n_samples`` and ``start_index`` are ints here (one value for every
    cloud); random starts are not offered.

    Returns:
        FPSResult: indices (B, n_samples) int64, distances (B, n_samples),
        counts (B,) int64; unbatched inputs drop the B axis.
    """
    _flags(allow_fewer=allow_fewer, channels_first=channels_first)
    return FPSResult(
        *torch.ops.deepscope.farthest_point_sample(
            points,
            _count(n_samples, "n_samples"),
            lengths,
            _count(start_index, "start_index"),
            allow_fewer,
            channels_first,
        )
    )


# ----------------------------------------------------------------------------
# kNN and ball query


@torch.library.custom_op(f"{_LIB}::knn", mutates_args=())
def _knn_op(
    query: Tensor,
    reference: Tensor | None,
    k: int,
    query_lengths: Tensor | None,
    reference_lengths: Tensor | None,
    exclude_self: bool,
    squared: bool,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.knn(
        query,
        reference,
        k=k,
        query_lengths=query_lengths,
        reference_lengths=reference_lengths,
        exclude_self=exclude_self,
        squared=squared,
        channels_first=channels_first,
    )
    return _fresh(result, query, reference, query_lengths, reference_lengths)


def _neighbour_fake(query: Tensor, width: int, channels_first: bool):
    B, M, _ = _batch_dims(query, "query", channels_first)
    return (
        query.new_empty(_shape(B, M, width), dtype=torch.int64),
        query.new_empty(_shape(B, M, width), dtype=_float_out(query.dtype)),
        query.new_empty(_shape(B, M), dtype=torch.int64),
    )


@_knn_op.register_fake
def _(query, reference, k, query_lengths, reference_lengths, *flags):
    return _neighbour_fake(query, k, flags[-1])


def knn(
    query: Tensor,
    reference: Tensor | None = None,
    *,
    k: int,
    query_lengths: Tensor | None = None,
    reference_lengths: Tensor | None = None,
    exclude_self: bool = False,
    squared: bool = True,
    channels_first: bool = False,
) -> KNNResult:
    """:func:`deepscope.pointcloud.knn` as a torch operator.

    Returns:
        KNNResult: indices (B, M, k) int64, distances (B, M, k), counts
        (B, M) int64; unbatched inputs drop the B axis.
    """
    _flags(exclude_self=exclude_self, squared=squared, channels_first=channels_first)
    return KNNResult(
        *torch.ops.deepscope.knn(
            query,
            reference,
            _count(k, "k"),
            query_lengths,
            reference_lengths,
            exclude_self,
            squared,
            channels_first,
        )
    )


@torch.library.custom_op(f"{_LIB}::ball_query", mutates_args=())
def _ball_op(
    query: Tensor,
    reference: Tensor | None,
    radius: float,
    max_neighbors: int,
    query_lengths: Tensor | None,
    reference_lengths: Tensor | None,
    exclude_self: bool,
    squared: bool,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.ball_query(
        query,
        reference,
        radius=radius,
        max_neighbors=max_neighbors,
        query_lengths=query_lengths,
        reference_lengths=reference_lengths,
        exclude_self=exclude_self,
        squared=squared,
        channels_first=channels_first,
    )
    return _fresh(result, query, reference, query_lengths, reference_lengths)


@_ball_op.register_fake
def _(query, reference, radius, max_neighbors, *rest):
    return _neighbour_fake(query, max_neighbors, rest[-1])


def ball_query(
    query: Tensor,
    reference: Tensor | None = None,
    *,
    radius: float,
    max_neighbors: int,
    query_lengths: Tensor | None = None,
    reference_lengths: Tensor | None = None,
    exclude_self: bool = False,
    squared: bool = True,
    channels_first: bool = False,
):
    """:func:`deepscope.pointcloud.ball_query` as a torch operator.

    Returns:
        BallQueryResult: indices (B, M, max_neighbors) int64, distances,
        counts (B, M) int64; unbatched inputs drop the B axis.
    """
    _flags(exclude_self=exclude_self, squared=squared, channels_first=channels_first)
    return _pointcloud.BallQueryResult(
        *torch.ops.deepscope.ball_query(
            query,
            reference,
            float(radius),
            _count(max_neighbors, "max_neighbors"),
            query_lengths,
            reference_lengths,
            exclude_self,
            squared,
            channels_first,
        )
    )


# ----------------------------------------------------------------------------
# EPiC samplers


def _partial_fake(points, rows: int, width: int, channels_first: bool):
    B, N, _ = _batch_dims(points, "points", channels_first)
    S = min(width, N)
    return (
        points.new_empty(_shape(B, rows, S), dtype=torch.int64),
        points.new_empty(_shape(B, rows), dtype=torch.int64),
        points.new_empty(_shape(B, rows), dtype=torch.int64),
    )


@torch.library.custom_op(f"{_LIB}::knn_patches", mutates_args=())
def _patches_op(
    points: Tensor,
    anchors: Tensor,
    patch_size: int,
    lengths: Tensor | None,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.knn_patches(
        points, anchors, patch_size, lengths=lengths, channels_first=channels_first
    )
    return _fresh(result, points, anchors, lengths)


@_patches_op.register_fake
def _(points, anchors, patch_size, lengths, channels_first):
    return _partial_fake(points, anchors.shape[-1], patch_size, channels_first)


def knn_patches(
    points: Tensor,
    anchors: Tensor,
    patch_size: int,
    *,
    lengths: Tensor | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """:func:`deepscope.pointcloud.knn_patches` as a torch operator.

    Returns:
        PartialResult: indices (B, A, min(patch_size, N)), counts (B, A),
        anchors (B, A), all int64.
    """
    _flags(channels_first=channels_first)
    return PartialResult(
        *torch.ops.deepscope.knn_patches(
            points, anchors, _count(patch_size, "patch_size"), lengths, channels_first
        )
    )


@torch.library.custom_op(f"{_LIB}::random_walk_curves", mutates_args=())
def _curves_op(
    points: Tensor,
    anchors: Tensor,
    length: int,
    k: int,
    allow_revisits: bool,
    seed: int,
    lengths: Tensor | None,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.random_walk_curves(
        points,
        anchors,
        length,
        k=k,
        allow_revisits=allow_revisits,
        seed=_from_op_seed(seed),
        lengths=lengths,
        channels_first=channels_first,
    )
    return _fresh(result, points, anchors, lengths)


@_curves_op.register_fake
def _(points, anchors, length, k, allow_revisits, seed, lengths, channels_first):
    return _partial_fake(points, anchors.shape[-1], length, channels_first)


def random_walk_curves(
    points: Tensor,
    anchors: Tensor,
    length: int,
    *,
    k: int = _pointcloud.PAPER_DEFAULTS["k"],
    allow_revisits: bool = True,
    seed: int = 0,
    lengths: Tensor | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """:func:`deepscope.pointcloud.random_walk_curves` as a torch operator.

    Returns:
        PartialResult: indices (B, A, min(length, N)), counts (B, A), anchors
        (B, A), all int64.
    """
    _flags(allow_revisits=allow_revisits, channels_first=channels_first)
    return PartialResult(
        *torch.ops.deepscope.random_walk_curves(
            points,
            anchors,
            _count(length, "length"),
            _count(k, "k"),
            allow_revisits,
            _to_op_seed(seed),
            lengths,
            channels_first,
        )
    )


@torch.library.custom_op(f"{_LIB}::random_subsets", mutates_args=())
def _subsets_op(
    points: Tensor,
    size: int,
    n_subsets: int,
    seed: int,
    lengths: Tensor | None,
    channels_first: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _pointcloud.random_subsets(
        points,
        size,
        n_subsets,
        seed=_from_op_seed(seed),
        lengths=lengths,
        channels_first=channels_first,
    )
    return _fresh(result, points, lengths)


@_subsets_op.register_fake
def _(points, size, n_subsets, seed, lengths, channels_first):
    return _partial_fake(points, n_subsets, size, channels_first)


def random_subsets(
    points: Tensor,
    size: int,
    n_subsets: int,
    *,
    seed: int = 0,
    lengths: Tensor | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """:func:`deepscope.pointcloud.random_subsets` as a torch operator.

    Returns:
        PartialResult: indices (B, n_subsets, min(size, N)), counts and
        anchors (B, n_subsets) (anchors all -1), all int64.
    """
    _flags(channels_first=channels_first)
    return PartialResult(
        *torch.ops.deepscope.random_subsets(
            points,
            _count(size, "size"),
            _count(n_subsets, "n_subsets"),
            _to_op_seed(seed),
            lengths,
            channels_first,
        )
    )


def gather_points(points: Tensor, indices: Tensor, *, fill: float = 0.0) -> Tensor:
    """Coordinates of indexed points with plain torch ops (differentiable).

    Unlike :func:`deepscope.pointcloud.gather_points` the indices are not
    validated (that would read them on the host and break the graph):
    indices must lie in [-1, N).

    Args:
        points: (B, N, D) or (N, D) tensor.
        indices: (B, ..., S) int64 (``(..., S)`` for unbatched points); -1
            marks padding.
        fill: value of the rows of -1 entries.

    Returns:
        (B, ..., S, D) tensor in the dtype and device of ``points``.
    """
    if points.dim() == 2:
        return gather_points(points[None], indices[None], fill=fill)[0]
    B, _, D = points.shape
    flat = indices.reshape(B, -1)
    safe = flat.clamp(min=0)
    rows = torch.gather(points, 1, safe[..., None].expand(-1, -1, D))
    rows = torch.where((flat >= 0)[..., None], rows, torch.full_like(rows, fill))
    return rows.reshape(*indices.shape, D)


# ----------------------------------------------------------------------------
# Point importance


def _features_dims(features: Tensor, channels_last: bool):
    if features.dim() not in (2, 3):
        raise ValueError(
            f"features: expected 2 or 3 dimensions, got {features.dim()} (shape "
            f"{tuple(features.shape)})"
        )
    B = features.shape[0] if features.dim() == 3 else None
    N = features.shape[-2] if channels_last else features.shape[-1]
    return B, N


@torch.library.custom_op(f"{_LIB}::importance_stats", mutates_args=())
def _stats_op(
    features: Tensor,
    p: float,
    lengths: Tensor | None,
    entropy_of: str,
    channels_last: bool,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    result = _importance.importance_stats(
        features,
        p=p,
        lengths=lengths,
        entropy_of=entropy_of,
        channels_last=channels_last,
        eps=eps,
    )
    return _fresh(result, features, lengths)


@_stats_op.register_fake
def _(features, p, lengths, entropy_of, channels_last, eps):
    B, N = _features_dims(features, channels_last)
    dtype = _float_out(features.dtype)
    return (
        features.new_empty(_shape(B, N), dtype=dtype),
        features.new_empty(_shape(B, N), dtype=torch.int64),
        features.new_empty(_shape(B), dtype=dtype),
    )


def importance_stats(
    features: Tensor,
    *,
    p: float = 2,
    lengths: Tensor | None = None,
    entropy_of: str = "counts",
    channels_last: bool = False,
    eps: float = 1e-6,
) -> ImportanceStats:
    """:func:`deepscope.importance.importance_stats` as a torch operator.

    Returns:
        ImportanceStats: norms (B, N), counts (B, N) int64, entropy (B,).
    """
    _flags(channels_last=channels_last)
    return ImportanceStats(
        *torch.ops.deepscope.importance_stats(
            features, float(p), lengths, entropy_of, channels_last, float(eps)
        )
    )


@torch.library.custom_op(f"{_LIB}::feature_norms", mutates_args=())
def _norms_op(
    features: Tensor, p: float, lengths: Tensor | None, channels_last: bool
) -> Tensor:
    out = _importance.feature_norms(
        features, p=p, lengths=lengths, channels_last=channels_last
    )
    return _fresh([out], features, lengths)[0]


@_norms_op.register_fake
def _(features, p, lengths, channels_last):
    B, N = _features_dims(features, channels_last)
    return features.new_empty(_shape(B, N), dtype=_float_out(features.dtype))


def feature_norms(
    features: Tensor,
    *,
    p: float = 2,
    lengths: Tensor | None = None,
    channels_last: bool = False,
) -> Tensor:
    """:func:`deepscope.importance.feature_norms` as a torch operator: (B, N)."""
    _flags(channels_last=channels_last)
    return torch.ops.deepscope.feature_norms(features, float(p), lengths, channels_last)


@torch.library.custom_op(f"{_LIB}::critical_counts", mutates_args=())
def _counts_op(features: Tensor, lengths: Tensor | None, channels_last: bool) -> Tensor:
    out = _importance.critical_counts(
        features, lengths=lengths, channels_last=channels_last
    )
    return _fresh([out], features, lengths)[0]


@_counts_op.register_fake
def _(features, lengths, channels_last):
    B, N = _features_dims(features, channels_last)
    return features.new_empty(_shape(B, N), dtype=torch.int64)


def critical_counts(
    features: Tensor, *, lengths: Tensor | None = None, channels_last: bool = False
) -> Tensor:
    """:func:`deepscope.importance.critical_counts` as a torch operator:
    (B, N) int64."""
    _flags(channels_last=channels_last)
    return torch.ops.deepscope.critical_counts(features, lengths, channels_last)


@torch.library.custom_op(f"{_LIB}::normalized_entropy", mutates_args=())
def _entropy_op(importance: Tensor, lengths: Tensor | None, eps: float) -> Tensor:
    out = _importance.normalized_entropy(importance, lengths=lengths, eps=eps)
    return _fresh([out], importance, lengths)[0]


@_entropy_op.register_fake
def _(importance, lengths, eps):
    dtype = torch.float32 if importance.dtype == torch.float32 else torch.float64
    if importance.dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    return importance.new_empty(importance.shape[:-1], dtype=dtype)


def normalized_entropy(
    importance: Tensor, *, lengths: Tensor | None = None, eps: float = 1e-6
) -> Tensor:
    """:func:`deepscope.importance.normalized_entropy` as a torch operator:
    (B,)."""
    return torch.ops.deepscope.normalized_entropy(importance, lengths, float(eps))


@torch.library.custom_op(f"{_LIB}::least_important", mutates_args=())
def _least_op(
    importance: Tensor, k: int, tiebreak: Tensor | None, lengths: Tensor | None
) -> Tensor:
    out = _importance.least_important(importance, k, tiebreak=tiebreak, lengths=lengths)
    return _fresh([out], importance, tiebreak, lengths)[0]


@_least_op.register_fake
def _(importance, k, tiebreak, lengths):
    return importance.new_empty((*importance.shape[:-1], k), dtype=torch.int64)


def least_important(
    importance: Tensor,
    k: int,
    *,
    tiebreak: Tensor | None = None,
    lengths: Tensor | None = None,
) -> Tensor:
    """:func:`deepscope.importance.least_important` with an int ``k``:
    (B, k) int64."""
    return torch.ops.deepscope.least_important(
        importance, _count(k, "k"), tiebreak, lengths
    )


@torch.library.custom_op(f"{_LIB}::adaptive_subset", mutates_args=())
def _adaptive_op(
    features: Tensor, lengths: Tensor | None, channels_last: bool, eps: float
) -> tuple[Tensor, Tensor]:
    indices, k = _importance.adaptive_subset(
        features, lengths=lengths, channels_last=channels_last, eps=eps
    )
    _, N = _features_dims(features, channels_last)
    pad = N - indices.shape[-1]
    indices = torch.nn.functional.pad(indices, (0, pad), value=-1)
    return _fresh((indices, k), features, lengths)


@_adaptive_op.register_fake
def _(features, lengths, channels_last, eps):
    B, N = _features_dims(features, channels_last)
    return (
        features.new_empty(_shape(B, N), dtype=torch.int64),
        features.new_empty(_shape(B), dtype=torch.int64),
    )


def adaptive_subset(
    features: Tensor,
    *,
    lengths: Tensor | None = None,
    channels_last: bool = False,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """:func:`deepscope.importance.adaptive_subset` with a static width.

    Returns:
        ``(indices, k)``: (B, N) int64 indices, least important first, -1
        after ``k[b]`` entries (the plain API trims to ``max(k)``), and (B,)
        int64 ``k``.
    """
    _flags(channels_last=channels_last)
    return torch.ops.deepscope.adaptive_subset(features, lengths, channels_last, eps)


# ----------------------------------------------------------------------------
# EPiC partial clouds, composed of the operators above

_METHODS = ("patch", "curve", "random")


def partial_clouds(
    points: Tensor,
    method: str,
    *,
    n_anchors: int = _pointcloud.PAPER_DEFAULTS["n_anchors"],
    size: int | None = None,
    k: int = _pointcloud.PAPER_DEFAULTS["k"],
    anchors: Tensor | None = None,
    allow_revisits: bool = True,
    seed: int = 0,
    lengths: Tensor | None = None,
    channels_first: bool = False,
) -> PartialResult:
    """:func:`deepscope.pointcloud.partial_clouds` from the operators above.

    FPS anchors from index 0 (when ``anchors`` is None), then one patch,
    curve or random subset per anchor: the same indices as the plain API.

    Returns:
        PartialResult: indices (B, A, S), counts (B, A), anchors (B, A), all
        int64 (-1 anchors for ``"random"``).
    """
    _flags(allow_revisits=allow_revisits, channels_first=channels_first)
    if method not in _METHODS:
        raise ValueError(
            f"method: expected one of {', '.join(map(repr, _METHODS))}, got {method!r}"
        )
    size = _pointcloud.PAPER_DEFAULTS[method] if size is None else _count(size, "size")
    if anchors is None:
        n_anchors = _count(n_anchors, "n_anchors")
    if method == "random":
        n = n_anchors if anchors is None else anchors.shape[-1]
        return random_subsets(
            points, size, n, seed=seed, lengths=lengths, channels_first=channels_first
        )
    if anchors is None:
        anchors = farthest_point_sample(
            points,
            n_anchors,
            lengths=lengths,
            start_index=0,
            allow_fewer=True,
            channels_first=channels_first,
        ).indices
    if method == "patch":
        return knn_patches(
            points, anchors, size, lengths=lengths, channels_first=channels_first
        )
    return random_walk_curves(
        points,
        anchors,
        size,
        k=k,
        allow_revisits=allow_revisits,
        seed=seed,
        lengths=lengths,
        channels_first=channels_first,
    )


# ----------------------------------------------------------------------------
# Graphs: exact kNN of feature vectors of any dimension


@torch.library.custom_op(f"{_LIB}::feature_knn", mutates_args=())
def _feature_knn_op(
    query: Tensor,
    reference: Tensor | None,
    k: int,
    exclude_self: bool,
    block_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    from deepscope import graph as _graph

    result = _graph.feature_knn(
        query, reference, k=k, exclude_self=exclude_self, block_size=block_size
    )
    return _fresh(result, query, reference)


@_feature_knn_op.register_fake
def _(query, reference, k, exclude_self, block_size):
    if query.dim() != 2:
        raise ValueError(
            f"query: expected 2 dimensions (M, D), got {query.dim()} (shape "
            f"{tuple(query.shape)})"
        )
    M = query.shape[0]
    return (
        query.new_empty((M, k), dtype=torch.int64),
        query.new_empty((M, k), dtype=_float_out(query.dtype)),
        query.new_empty((M,), dtype=torch.int64),
    )


def feature_knn(
    query: Tensor,
    reference: Tensor | None = None,
    *,
    k: int,
    exclude_self: bool | None = None,
    block_size: int = 4096,
) -> KNNResult:
    """:func:`deepscope.graph.feature_knn` as a torch operator.

    :func:`deepscope.graph.knn_graph` itself is not an operator: its sparse
    graph has a data-dependent number of edges. Compiled code takes these
    (M, k) neighbours instead.

    Returns:
        KNNResult: indices (M, k) int64, squared distances (M, k) (float64
        for float64 input, else float32), counts (M,) int64.
    """
    _flags(exclude_self=exclude_self, allow_none=True)
    if exclude_self is None:
        exclude_self = reference is None
    return KNNResult(
        *torch.ops.deepscope.feature_knn(
            query,
            reference,
            _count(k, "k"),
            exclude_self,
            _count(block_size, "block_size"),
        )
    )


# ----------------------------------------------------------------------------
# Embedding geometry: conformity


@torch.library.custom_op(f"{_LIB}::conformity", mutates_args=())
def _conformity_op(
    embeddings: Tensor,
    reference: Tensor | None,
    leave_one_out: bool,
    exact: bool,
) -> Tensor:
    from deepscope import embedding as _embedding

    fn = _embedding.exact_conformity if exact else _embedding.conformity
    out = fn(embeddings, reference, leave_one_out=leave_one_out)
    return _fresh([out], embeddings, reference)[0]


@_conformity_op.register_fake
def _(embeddings, reference, leave_one_out, exact):
    if embeddings.dim() != 2:
        raise ValueError(
            f"embeddings: expected 2 dimensions (N, D), got {embeddings.dim()} "
            f"(shape {tuple(embeddings.shape)})"
        )
    return embeddings.new_empty(
        (embeddings.shape[0],), dtype=_float_out(embeddings.dtype)
    )


def conformity(
    embeddings: Tensor,
    reference: Tensor | None = None,
    *,
    leave_one_out: bool | None = None,
    exact: bool = False,
) -> Tensor:
    """:func:`deepscope.embedding.conformity` as a torch operator.

    Args:
        exact: use :func:`deepscope.embedding.exact_conformity` (tiles of
            pairwise cosines) instead of the O(N D) identity.

    Returns:
        (N,) conformity, float64 for float64 input, else float32.
    """
    _flags(exact=exact)
    _flags(leave_one_out=leave_one_out, allow_none=True)
    if leave_one_out is None:
        leave_one_out = reference is None
    return torch.ops.deepscope.conformity(embeddings, reference, leave_one_out, exact)


# ----------------------------------------------------------------------------
# Training dynamics: the fused CMD assignment + affine fit


@torch.library.custom_op(f"{_LIB}::cmd_assign_and_fit", mutates_args=())
def _cmd_fit_op(
    window: Tensor, references: Tensor, time_major: bool, diagnostics: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    from deepscope.dynamics import assign_and_fit as _assign_and_fit

    result = _assign_and_fit(
        window, references, time_major=time_major, diagnostics=diagnostics
    )
    outputs = list(result[:3])
    for value, dtype in zip(
        result[3:], (outputs[1].dtype, torch.float64, torch.float64), strict=True
    ):
        outputs.append(
            value if value is not None else window.new_empty((0,), dtype=dtype)
        )
    return _fresh(outputs, window, references)


@_cmd_fit_op.register_fake
def _(window, references, time_major, diagnostics):
    if window.dim() != 2:
        raise ValueError(
            f"window: expected 2 dimensions, got {window.dim()} (shape "
            f"{tuple(window.shape)})"
        )
    N = window.shape[1] if time_major else window.shape[0]
    R = N if diagnostics else 0
    dtype = _float_out(window.dtype)
    return (
        window.new_empty((N,), dtype=torch.int64),
        window.new_empty((N,), dtype=dtype),
        window.new_empty((N,), dtype=dtype),
        window.new_empty((R,), dtype=dtype),
        window.new_empty((R,), dtype=torch.float64),
        window.new_empty((R,), dtype=torch.float64),
    )


def assign_and_fit(
    window: Tensor,
    references: Tensor,
    *,
    time_major: bool = True,
    diagnostics: bool = True,
) -> AssignFit:
    """:func:`deepscope.dynamics.assign_and_fit` as a torch operator.

    ``references`` must be a tensor (any device; it is read on the host).

    Returns:
        AssignFit: modes (N,) int64, a, b (N,), and with ``diagnostics`` rho
        (N,), sxx, sse (N,) float64 (None without).
    """
    _flags(time_major=time_major, diagnostics=diagnostics)
    out = torch.ops.deepscope.cmd_assign_and_fit(
        window, references, time_major, diagnostics
    )
    if not diagnostics:
        out = (*out[:3], None, None, None)
    return AssignFit(*out)
