# EPiC ensembles of partial-cloud members and Critical Points++ subset members.
# SPDX-License-Identifier: MIT
"""EPiC (Levi and Gilboa, ICCV 2023, arXiv 2303.11419) and critical subsets.

* :class:`PartialMember` wraps any backbone (a module mapping (B, N, 3)
  points to (B, classes) logits) so that it sees partial clouds: kNN patches,
  random-walk curves or random subsets (:func:`deepscope.pointcloud.partial_clouds`,
  one call per batch). In training mode every cloud gets one uniformly random
  anchor per forward; in eval mode the ``n_anchors`` FPS anchors (from index
  0) give ``n_anchors`` members whose logits are averaged.
* :class:`CriticalSubsetMember` (Critical Points++, arXiv 2308.05525) trains on
  the ``k`` least important points of every cloud (``k`` drawn per batch) and
  classifies, at inference, the entropy-adaptive subset
  (:func:`deepscope.importance.adaptive_subset`). The backbone must provide
  ``forward_features`` (as :class:`deepscope.models.PointNet` and
  :class:`~deepscope.models.DGCNN` do).
* :class:`EPiC` averages the raw logits of all members (no softmax, no vote).
  Under :func:`torch.compile` the members call the kernels as operators
  (:mod:`deepscope.torch_ops`), so an ensemble traces without graph breaks.
* :func:`train_member` trains a member with
  :func:`deepscope.models.train_classifier` (the published recipe's options
  with CPU-sized defaults).

Differences from the reference code: anchors during training are drawn per
cloud (the reference uses one random index for the whole batch and makes one
optimizer step per anchor; here one step per batch with one anchor per
cloud); sampling randomness is per sample (see
:mod:`deepscope.pointcloud`); the critical member's padded rows (clouds with
fewer than the batch's largest ``k``) repeat the row's first point, which
leaves max-pooled networks exact and replaces the reference's batch size of
one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope._arrays import check_count, check_seed
from deepscope.pointcloud import PAPER_DEFAULTS, gather_points, partial_clouds

try:  # torch >= 2.4: the kernels as custom operators, for torch.compile
    from deepscope import torch_ops as _ops
except ImportError:  # older torch: compiled models fall back to graph breaks
    _ops = None

__all__ = [
    "EPiC",
    "CriticalSubsetMember",
    "PartialMember",
    "train_member",
]

METHODS = ("patch", "curve", "random")


def _fill_padding(indices: torch.Tensor) -> torch.Tensor:
    """Replaces -1 entries of (..., S) indices by the row's first index."""
    first = indices[..., :1].clamp_min(0).expand_as(indices)
    return torch.where(indices >= 0, indices, first)


def _compiling() -> bool:
    """True while torch.compile traces the caller."""
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def _gather(points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """gather_points; without the host-side index check under torch.compile."""
    if _ops is not None and _compiling():
        return _ops.gather_points(points, indices)
    return gather_points(points, indices)


def _check_points(points: Any) -> torch.Tensor:
    if not torch.is_tensor(points):
        raise TypeError(f"points: expected a torch.Tensor, got {type(points).__name__}")
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points: expected (B, N, 3), got {tuple(points.shape)}")
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(
            f"points: expected non-empty clouds, got {tuple(points.shape)}"
        )
    return points


class PartialMember(nn.Module):
    """A backbone that classifies partial clouds (one EPiC model).

    Args:
        backbone: module mapping (B, S, 3) float points to (B, C) logits.
        method: ``"patch"``, ``"curve"`` or ``"random"``.
        n_anchors: members at inference (FPS anchors; random subsets for
            ``"random"``); the paper uses 4.
        size: points per partial cloud (default: the paper's 512 / 512 /
            128); clouds with fewer points give ``min(size, N)``.
        k: neighbours of the curve graph (paper: 19 besides the point).
        seed: seed of the inference-time curves / random subsets.
    """

    def __init__(
        self,
        backbone: nn.Module,
        method: str,
        *,
        n_anchors: int = PAPER_DEFAULTS["n_anchors"],
        size: int | None = None,
        k: int = PAPER_DEFAULTS["k"],
        seed: int = 0,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        self.backbone = backbone
        self.method = method
        self.n_anchors = check_count(n_anchors, "n_anchors")
        self.size = check_count(
            PAPER_DEFAULTS[method] if size is None else size, "size"
        )
        self.k = check_count(k, "k")
        self.seed = check_seed(seed)

    def partial(
        self, points: torch.Tensor, anchors: torch.Tensor | None, seed: int
    ) -> torch.Tensor:
        """(B, N, 3) clouds -> (B, A, S, 3) partial clouds, one call for the batch."""
        B, N, _ = points.shape
        k = min(self.k, N - 1) if N > 1 else 1
        if self.method == "curve" and N < 2:
            # A one-point cloud: the curve is the point itself.
            return points[:, None].expand(
                B, self.n_anchors if anchors is None else anchors.shape[1], 1, 3
            )
        if _ops is not None and _compiling():
            # Under torch.compile: the same kernels as operators, no graph break.
            result = _ops.partial_clouds(
                points.detach(),
                self.method,
                n_anchors=self.n_anchors,
                size=self.size,
                k=k,
                anchors=anchors,
                seed=seed,
            )
            return _ops.gather_points(points, _fill_padding(result.indices))
        result = partial_clouds(
            points.detach(),
            self.method,
            n_anchors=self.n_anchors,
            size=self.size,
            k=k,
            anchors=anchors,
            seed=seed,
        )
        indices = _fill_padding(result.indices.to(points.device))
        return gather_points(points, indices)

    def member_logits(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (A, B, C) logits of the ``n_anchors`` members."""
        points = _check_points(points)
        B = points.shape[0]
        parts = self.partial(points, None, self.seed)
        A, S = parts.shape[1], parts.shape[2]
        logits = self.backbone(parts.reshape(B * A, S, 3))
        return logits.reshape(B, A, -1).transpose(0, 1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Training: one random anchor per cloud; eval: mean over the anchors."""
        points = _check_points(points)
        if not self.training:
            return self.member_logits(points).mean(0)
        B, N, _ = points.shape
        anchors = torch.randint(N, (B, 1), device=points.device)
        seed = int(torch.randint(2**31 - 1, ()).item())
        parts = self.partial(points, anchors, seed)
        return self.backbone(parts[:, 0])

    def regularization_loss(self) -> torch.Tensor | float:
        extra = getattr(self.backbone, "regularization_loss", None)
        return extra() if callable(extra) else 0.0


class CriticalSubsetMember(nn.Module):
    """A backbone trained and tested on its least important points (CP++).

    Args:
        backbone: a module with ``forward_features(points) -> (logits, (B, F,
            N) features)`` and ``forward(points) -> logits``.
        k_low: training draws ``k ~ U{ceil(k_low * N), ..., N}`` per batch
            (CP++: ``randint(256, 1024)``, i.e. ``k_low = 0.25``).
        k: inference subset size; None (default) for the entropy-adaptive
            ``k = floor(H N)``; an int for a fixed size (CP++'s EPiC member
            uses 600 of 1024).

    Under :func:`torch.compile` a fixed ``k`` traces without graph breaks;
    the entropy-adaptive subset (``k=None``) has a data-dependent size and
    breaks the graph there.
    """

    def __init__(
        self, backbone: nn.Module, *, k_low: float = 0.25, k: int | None = None
    ):
        super().__init__()
        if not callable(getattr(backbone, "forward_features", None)):
            raise TypeError("backbone: expected a module with forward_features()")
        if not 0.0 < k_low <= 1.0:
            raise ValueError(f"k_low: expected 0 < k_low <= 1, got {k_low}")
        if k is not None and k < 1:
            raise ValueError(f"k: expected None or >= 1, got {k}")
        self.backbone = backbone
        self.k_low = float(k_low)
        self.k = k

    @torch.no_grad()
    def subset_indices(self, points: torch.Tensor, k: int | None) -> torch.Tensor:
        """(B, kmax) indices of the least important points, padding repeated."""
        from deepscope.importance import (
            adaptive_subset,
            importance_stats,
            least_important,
        )

        was_training = self.backbone.training
        self.backbone.eval()
        try:
            features = self.backbone.forward_features(points)[1]
        finally:
            self.backbone.train(was_training)
        if k is not None and _ops is not None and _compiling():
            # Under torch.compile: the same kernels as operators, no graph break.
            stats = _ops.importance_stats(features, p=1)
            indices = _ops.least_important(
                stats.counts, min(int(k), points.shape[1]), tiebreak=stats.norms
            )
        elif k is None:
            indices, _ = adaptive_subset(features)
        else:
            stats = importance_stats(features, p=1)
            indices = least_important(
                stats.counts, min(int(k), points.shape[1]), tiebreak=stats.norms
            )
        return _fill_padding(indices.to(points.device))

    def member_logits(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (1, B, C) logits on the inference subset."""
        points = _check_points(points)
        subset = _gather(points, self.subset_indices(points, self.k))
        return self.backbone(subset)[None]

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        points = _check_points(points)
        if not self.training:
            return self.member_logits(points)[0]
        N = points.shape[1]
        low = max(1, int(np.ceil(self.k_low * N)))
        k = int(torch.randint(low, N + 1, ()).item())
        subset = gather_points(points, self.subset_indices(points, k))
        return self.backbone(subset)

    def regularization_loss(self) -> torch.Tensor | float:
        extra = getattr(self.backbone, "regularization_loss", None)
        return extra() if callable(extra) else 0.0


class EPiC(nn.Module):
    """An ensemble of members; the prediction is the mean of raw logits.

    The paper's ensemble is three separately trained backbones, one per
    partial-cloud method, each evaluated on four FPS anchors: 12 members
    (:meth:`from_backbones`). Any :class:`PartialMember` /
    :class:`CriticalSubsetMember` (or module with ``member_logits``) can be
    added; a plain module counts as one member.

    Args:
        members: the member modules.
    """

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) == 0:
            raise ValueError("members: expected at least one member")
        self.members = nn.ModuleList(members)

    @classmethod
    def from_backbones(
        cls,
        backbones: Sequence[nn.Module],
        methods: Sequence[str] = METHODS,
        *,
        n_anchors: int = PAPER_DEFAULTS["n_anchors"],
        sizes: dict[str, int] | None = None,
        seed: int = 0,
    ) -> EPiC:
        """The paper's ensemble: backbone i sees ``methods[i]`` partial clouds.

        Args:
            backbones: one trained backbone per method (3 by default).
            methods: the method of each backbone.
            n_anchors: anchors per backbone (4: 12 members).
            sizes: points per partial cloud by method (default the paper's).
            seed: inference seed of curves and random subsets.
        """
        if len(backbones) != len(methods):
            raise ValueError(
                f"backbones: expected {len(methods)} (one per method), got "
                f"{len(backbones)}"
            )
        sizes = sizes or {}
        seed = check_seed(seed)  # one seed for every member
        return cls(
            [
                PartialMember(b, m, n_anchors=n_anchors, size=sizes.get(m), seed=seed)
                for b, m in zip(backbones, methods, strict=True)
            ]
        )

    @property
    def n_members(self) -> int:
        return sum(getattr(m, "n_anchors", 1) for m in self.members)

    def member_logits(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (M, B, C) logits of every member."""
        out = []
        for member in self.members:
            if callable(getattr(member, "member_logits", None)):
                out.append(member.member_logits(points))
            else:
                out.append(member(points)[None])
        return torch.cat(out)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> (B, C) mean of the members' raw logits."""
        return self.member_logits(_check_points(points)).mean(0)


def train_member(
    member: nn.Module,
    train_set: Any,
    test_set: Any = None,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-3,
    optimizer: str = "adam",
    label_smoothing: float = 0.2,
    **options: Any,
) -> dict[str, list[float]]:
    """Trains a :class:`PartialMember` or :class:`CriticalSubsetMember`.

    A thin wrapper of :func:`deepscope.models.train_classifier` (EPiC's
    augmentation: anisotropic scale, shift, shuffle). The published recipe is
    ``epochs=500`` (EPiC) / ``300`` (CP++), ``batch_size=64``,
    ``optimizer="sgd"``, ``lr=0.005``, cosine schedule, ``weight_decay=1e-4``,
    ``label_smoothing=0.2``; the defaults here are scaled down for a CPU
    (Adam 1e-3, 5 epochs, batch 32).

    Returns:
        The history of :func:`deepscope.models.train_classifier`.
    """
    from deepscope.models import train_classifier

    return train_classifier(
        member,
        train_set,
        test_set,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        label_smoothing=label_smoothing,
        **options,
    )
