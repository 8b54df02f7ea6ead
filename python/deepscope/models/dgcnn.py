# DGCNN classifier (Wang et al., TOG 2019) with the pre-bottleneck feature protocol.
# SPDX-License-Identifier: MIT
"""DGCNN: four EdgeConv layers on dynamic kNN graphs, conv5, max+avg pooling.

Y. Wang, Y. Sun, Z. Liu, S. E. Sarma, M. M. Bronstein, J. M. Solomon,
"Dynamic Graph CNN for Learning on Point Clouds", ACM TOG 38(5), 2019.

Neighbour search. Each EdgeConv finds the k nearest neighbours of every point
(the point itself included, at distance 0) in the space of its input: the
coordinates for the first layer, the 64/64/128-channel features for the
others. Indices carry no gradient. ``knn`` selects the search:

* ``"torch"``: dense float64 distances and a stable sort, ties to the lowest
  index; in up to 8 dimensions the distances are the left-to-right sums of
  squared differences, exactly as the deepscope kernel computes them, so it is
  also the test oracle for the kernel. O(B N^2) memory.
* ``"deepscope"``: :func:`deepscope.pointcloud.knn` for every layer.
* ``"auto"`` (default): the kernel for the coordinate layer (3-D, where a
  spatial index wins) and, on the feature layers, the kernel on CUDA and the
  dense path on CPU (for 64-128 dimensions a BLAS distance matrix beats a
  kd-tree at the cloud sizes these networks see, N <= a few thousand).
  ``benchmarks/bench_dgcnn_knn.py`` measures both paths per layer.
"""

from __future__ import annotations

import torch
from torch import nn

from deepscope._arrays import check_count
from deepscope.models._base import PointClassifier

__all__ = ["DGCNN", "KNN_MODES", "dense_knn"]

#: Neighbour-search modes of :class:`DGCNN`.
KNN_MODES = ("auto", "deepscope", "torch")
#: Up to this many dimensions the dense path sums squared differences exactly.
_EXACT_DIMS = 8


def dense_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """k nearest neighbours by dense float64 distances, ties to the lowest index.

    Args:
        x: (B, N, D) float points or features (no gradient flows).
        k: neighbours per point, 1 <= k <= N.

    Returns:
        (B, N, k) int64 indices sorted by (squared distance, index); each
        point's own index comes first unless it has exact duplicates with a
        lower index.
    """
    with torch.no_grad():
        x = x.detach().to(torch.float64)
        if x.shape[-1] <= _EXACT_DIMS:
            # ((dx*dx) + dy*dy) + dz*dz, summed left to right like the kernel.
            dist = (x[:, :, None, 0] - x[:, None, :, 0]) ** 2
            for d in range(1, x.shape[-1]):
                dist = dist + (x[:, :, None, d] - x[:, None, :, d]) ** 2
        else:
            # |a|^2 + |b|^2 - 2 a.b through one batched GEMM.
            sq = (x * x).sum(-1)
            dist = torch.baddbmm(
                sq[:, :, None] + sq[:, None, :], x, x.transpose(1, 2), alpha=-2.0
            ).clamp_(min=0.0)
        return _smallest_k(dist, k)


def _smallest_k(dist: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries per row, sorted by (value, index).

    ``topk`` is fast but picks arbitrarily among equal values; rows whose k-th
    value is tied with an unselected entry are redone with a stable full sort.
    """
    values, indices = torch.topk(dist, k, dim=-1, largest=False, sorted=True)
    kth = values[..., -1:]
    tied = (dist <= kth).sum(dim=-1) > k

    # Order the selection by index, then stably by value: (value, index) order.
    indices = indices.sort(dim=-1).values
    order = torch.sort(torch.gather(dist, -1, indices), dim=-1, stable=True).indices
    indices = torch.gather(indices, -1, order)
    if tied.any():
        rows = torch.sort(dist[tied], dim=-1, stable=True).indices[..., :k]
        indices[tied] = rows
    return indices.contiguous()


def _knn_indices(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, D) -> (B, N, k) int64 neighbours from the deepscope kNN kernel."""
    try:
        from deepscope.pointcloud import knn
    except ImportError as error:
        raise ImportError(
            "DGCNN(knn='deepscope'|'auto') needs deepscope.pointcloud.knn, which "
            "this build lacks; pass knn='torch' for the dense torch search"
        ) from error
    return knn(x.detach(), k=k).indices


def _edge_features(x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """EdgeConv inputs: (B, C, N) features, (B, N, k) neighbours -> (B, 2C, N, k).

    Each edge (i, j) carries (x_j - x_i, x_i).
    """
    B, C, N = x.shape
    k = indices.shape[-1]
    points = x.transpose(1, 2).contiguous()  # (B, N, C)
    base = torch.arange(B, device=x.device).view(B, 1, 1) * N
    neighbours = points.view(B * N, C)[(indices + base).view(-1)].view(B, N, k, C)
    centres = points.unsqueeze(2).expand(B, N, k, C)
    edges = torch.cat((neighbours - centres, centres), dim=-1)
    return edges.permute(0, 3, 1, 2).contiguous()


def _edge_conv_apply(
    conv: nn.Sequential, x: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """One EdgeConv: ``conv(_edge_features(x, indices)).amax(-1)``, computed cheaply.

    The 1x1 convolution is linear, so ``W (x_j - x_i, x_i) = W_a x_j + (W_b -
    W_a) x_i``: it runs once per point instead of once per edge, and only its
    ``C_out`` outputs are gathered per edge (not the ``2 C`` inputs). Same
    parameters and result as the edge-feature form, up to float rounding.

    Args:
        conv: Conv2d(2C -> C_out, 1x1, no bias), BatchNorm2d, LeakyReLU.
        x: (B, C, N) layer input.
        indices: (B, N, k) int64 neighbours.

    Returns:
        (B, C_out, N) features (max over the k edges).
    """
    B, C, N = x.shape
    k = indices.shape[-1]
    weight = conv[0].weight[:, :, 0, 0]  # (C_out, 2C)
    w_neighbour, w_centre = weight[:, :C], weight[:, C:] - weight[:, :C]
    # Per-point projections, (B, C_out, N) each.
    neighbours = torch.matmul(w_neighbour, x)
    centres = torch.matmul(w_centre, x)
    # Gather the neighbours' projections per edge, add the centre's.
    index = indices.reshape(B, 1, N * k).expand(B, neighbours.shape[1], N * k)
    edges = torch.gather(neighbours, 2, index).view(B, -1, N, k)
    edges = edges + centres.unsqueeze(-1)
    return conv[2](conv[1](edges)).amax(dim=-1)


def _edge_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(2 * c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
    )


class DGCNN(PointClassifier):
    """The DGCNN classifier.

    Layers: EdgeConv 64, 64, 128, 256 (``channels``; 1x1 Conv2d + BatchNorm +
    LeakyReLU 0.2 on (x_j - x_i, x_i), max over the k neighbours),
    concatenation (512 = their sum) -> ``conv5`` (Conv1d 512 -> ``emb_dims`` +
    BatchNorm + LeakyReLU 0.2) = the
    pre-bottleneck features -> max-pool and average-pool concatenated -> MLP
    512-256 (BatchNorm + LeakyReLU + dropout) -> ``num_classes``.

    Args:
        num_classes: number of classes.
        k: neighbours per point in every EdgeConv; clouds need N >= k.
        emb_dims: width F of the per-point features (the head sees 2F).
        dropout: dropout probability in the head.
        in_channels: channels per input point (3 for x, y, z).
        knn: ``"auto"``, ``"deepscope"`` or ``"torch"`` (see the module docs).
        channels: widths of the four EdgeConv layers (the paper's 64, 64, 128,
            256 by default; narrower layers make a CPU-sized DGCNN).
    """

    architecture = "dgcnn"

    def __init__(
        self,
        num_classes: int,
        *,
        k: int = 20,
        emb_dims: int = 1024,
        dropout: float = 0.5,
        in_channels: int = 3,
        knn: str = "auto",
        channels: tuple[int, int, int, int] | list[int] = (64, 64, 128, 256),
    ):
        widths = [int(c) for c in channels]
        if len(widths) != 4 or any(c < 1 for c in widths):
            raise ValueError(
                f"channels: expected four widths >= 1, got {list(channels)!r}"
            )
        if knn not in KNN_MODES:
            raise ValueError(f"knn: expected one of {KNN_MODES}, got {knn!r}")
        k = check_count(k, "k")
        super().__init__(
            {
                "num_classes": int(num_classes),
                "k": int(k),
                "emb_dims": int(emb_dims),
                "dropout": float(dropout),
                "in_channels": int(in_channels),
                "channels": widths,
            }
        )
        self.k = int(k)
        self.knn = knn
        c1, c2, c3, c4 = widths
        self.conv1 = _edge_conv(in_channels, c1)
        self.conv2 = _edge_conv(c1, c2)
        self.conv3 = _edge_conv(c2, c3)
        self.conv4 = _edge_conv(c3, c4)
        self.conv5 = nn.Sequential(
            nn.Conv1d(sum(widths), emb_dims, 1, bias=False),
            nn.BatchNorm1d(emb_dims),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * emb_dims, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(512, 256, bias=False),
            nn.BatchNorm1d(256),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def neighbours(self, x: torch.Tensor, layer: int) -> torch.Tensor:
        """The kNN graph of one EdgeConv layer.

        Args:
            x: (B, C, N) layer input (coordinates for layer 0).
            layer: 0 for the coordinate layer, 1-3 for the feature layers.

        Returns:
            (B, N, k) int64 neighbour indices, sorted by (distance, index).
        """
        points = x.transpose(1, 2)
        use_kernel = self.knn == "deepscope" or (
            self.knn == "auto" and (layer == 0 or x.is_cuda)
        )
        if use_kernel:
            return _knn_indices(points, self.k)
        return dense_knn(points, self.k)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, N) points -> (B, emb_dims, N) pre-bottleneck features."""
        if x.shape[-1] < self.k:
            raise ValueError(
                f"points: DGCNN with k={self.k} needs at least {self.k} points per "
                f"cloud, got {x.shape[-1]}"
            )
        outputs = []
        for layer, conv in enumerate((self.conv1, self.conv2, self.conv3, self.conv4)):
            x = _edge_conv_apply(conv, x, self.neighbours(x, layer))
            outputs.append(x)
        return self.conv5(torch.cat(outputs, dim=1))

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F, N) -> (B, 2F): global max-pool, then average-pool."""
        return torch.cat((features.amax(dim=-1), features.mean(dim=-1)), dim=1)
