# Benchmarks of deepscope.importance against the torch composite of CP++/FBI.
# SPDX-License-Identifier: MIT
"""Point importance of a ModelNet-sized batch: B=32 clouds, C=1024, N=1024.

Ours: one fused pass (:func:`deepscope.importance.importance_stats`). Peer:
the torch composite the reference code uses (``vector_norm`` over channels,
``argmax`` over points, an offset ``bincount`` and the normalized entropy via
``xlogy``). Run with
``.venv/bin/python -m pytest benchmarks/bench_importance.py --benchmark-only -q``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import deepscope
from deepscope import importance as imp
from deepscope._bench_workloads import torch_importance_composite as torch_composite

torch = pytest.importorskip("torch")

B, C, N = 32, 1024, 1024


@pytest.fixture(scope="module")
def features() -> torch.Tensor:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, C, N), dtype=np.float32)
    return torch.from_numpy(np.maximum(x, 0))  # post-ReLU features


def _check_same(ours, peer):
    np.testing.assert_array_equal(ours.counts.cpu().numpy(), peer[1].cpu().numpy())
    np.testing.assert_allclose(
        ours.norms.cpu().numpy(), peer[0].cpu().numpy(), rtol=1e-4
    )
    np.testing.assert_allclose(
        ours.entropy.cpu().numpy(), peer[2].cpu().numpy(), rtol=1e-4, atol=1e-6
    )


@pytest.mark.benchmark(group="importance-cpu-B32-C1024-N1024")
def test_cpu_deepscope(benchmark, features):
    benchmark.extra_info["method"] = "deepscope.importance_stats (fused, float64 acc)"
    out = benchmark(imp.importance_stats, features)
    _check_same(out, torch_composite(features))


@pytest.mark.benchmark(group="importance-cpu-B32-C1024-N1024")
def test_cpu_torch_composite(benchmark, features):
    benchmark.extra_info["method"] = "torch vector_norm+argmax+bincount+xlogy"
    benchmark(torch_composite, features)


@pytest.mark.benchmark(group="importance-cpu-B32-N1024-C1024-channels-last")
def test_cpu_deepscope_channels_last(benchmark, features):
    last = features.transpose(1, 2).contiguous()
    benchmark.extra_info["method"] = "deepscope.importance_stats channels_last"
    out = benchmark(imp.importance_stats, last, channels_last=True)
    _check_same(out, torch_composite(features))


@pytest.mark.benchmark(group="importance-cpu-B32-N1024-C1024-channels-last")
def test_cpu_torch_composite_channels_last(benchmark, features):
    last = features.transpose(1, 2).contiguous()
    benchmark.extra_info["method"] = "torch composite on (B, N, C)"

    def run():
        norms = torch.linalg.vector_norm(last, dim=2)
        winners = last.argmax(dim=1) + N * torch.arange(B)[:, None]
        counts = torch.bincount(winners.reshape(-1), minlength=B * N)
        q = counts.reshape(B, N) + 1e-6
        q = q / q.sum(dim=1, keepdim=True)
        return norms, counts, -torch.xlogy(q, q).sum(dim=1) / math.log(N)

    benchmark(run)


def _gpu() -> bool:
    return deepscope.cuda_available() and torch.cuda.is_available()


@pytest.mark.skipif(not _gpu(), reason="no usable CUDA GPU")
@pytest.mark.benchmark(group="importance-cuda-B32-C1024-N1024")
def test_cuda_deepscope(benchmark, features):
    f = features.cuda()
    benchmark.extra_info["method"] = "deepscope.importance_stats (CUDA)"

    def run():
        out = imp.importance_stats(f)
        torch.cuda.synchronize()
        return out

    out = benchmark(run)
    _check_same(out, torch_composite(f))


@pytest.mark.skipif(not _gpu(), reason="no usable CUDA GPU")
@pytest.mark.benchmark(group="importance-cuda-B32-C1024-N1024")
def test_cuda_torch_composite(benchmark, features):
    f = features.cuda()
    benchmark.extra_info["method"] = "torch composite (CUDA)"

    def run():
        out = torch_composite(f)
        torch.cuda.synchronize()
        return out

    benchmark(run)
