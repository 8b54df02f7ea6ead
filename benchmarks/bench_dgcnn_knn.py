# DGCNN neighbour search per EdgeConv layer: deepscope kNN kernel versus dense torch.
# SPDX-License-Identifier: MIT
"""Which kNN path suits which DGCNN layer (the rule behind ``DGCNN(knn="auto")``).

Inputs are real: Fashion-MNIST point clouds (``dataset-fashion-mnist``) and
the features that a DGCNN computes on them at each EdgeConv layer (the
shipped ``dgcnn-fmnist`` weights when present: 32/32/64 channels, else a
seeded random initialisation of the full-width network: 64/64/128). 16
clouds of N = 256 and N = 1024 points, k = 20. Run::

    .venv/bin/python -m pytest benchmarks/bench_dgcnn_knn.py --benchmark-only -q
"""

from __future__ import annotations

from functools import cache

import pytest
import torch

from deepscope.models import DGCNN, dense_knn, pretrained
from deepscope.models.dgcnn import _edge_features
from deepscope.pointsets import fashion_mnist_points

K = 20
CLOUDS = 16


@cache
def _layer_inputs(n_points: int) -> list[torch.Tensor]:
    """(B, N, D) inputs of the four EdgeConv layers (D = 3, then the widths)."""
    try:
        data = fashion_mnist_points("test", n_points, limit=CLOUDS)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    try:
        model = pretrained("dgcnn-fmnist", knn="torch")
    except FileNotFoundError:
        torch.manual_seed(0)
        model = DGCNN(10, k=K, emb_dims=256, knn="torch").eval()
    x = torch.from_numpy(data.points).transpose(1, 2)
    inputs = []
    with torch.no_grad():
        for layer, conv in enumerate((model.conv1, model.conv2, model.conv3)):
            inputs.append(x.transpose(1, 2).contiguous())
            x = conv(_edge_features(x, model.neighbours(x, layer))).amax(dim=-1)
    inputs.append(x.transpose(1, 2).contiguous())
    return inputs


def _kernel():
    try:
        from deepscope.pointcloud import knn
    except ImportError:
        pytest.skip("deepscope.pointcloud.knn not in this build")
    return knn


@pytest.mark.parametrize("n_points", [256, 1024])
@pytest.mark.parametrize("layer", [0, 1, 2, 3])
@pytest.mark.parametrize("path", ["deepscope", "torch-dense"])
def test_dgcnn_layer_knn(benchmark, path, layer, n_points):
    x = _layer_inputs(n_points)[layer]
    benchmark.group = f"dgcnn-knn layer{layer} D={x.shape[-1]} N={n_points}"
    if path == "deepscope":
        knn = _kernel()
        benchmark(lambda: knn(x, k=K).indices)
    else:
        benchmark(lambda: dense_knn(x, K))
