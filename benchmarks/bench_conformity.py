# Benchmarks of deepscope.embedding conformity: exact blocked, identity, estimate.
# SPDX-License-Identifier: MIT
"""Conformity of D = 512 embeddings (the width of CLIP ViT-B/32).

* ``exact-N20k``: :func:`deepscope.embedding.exact_conformity` (upper tiles
  only, each reduced along both axes) against a straightforward torch version
  that normalises and sums ``(Xn[block] @ Xn.T)`` row blocks (4096 rows) over
  the whole set. Exact conformity is O(N^2 D): N = 100k takes minutes on this
  machine, so the suite runs N = 20k; scale by (100k / 20k)^2 = 25 for 100k.
  Set ``DEEPSCOPE_BENCH_CONFORMITY_N`` to run another size (once).
* ``fast-N100k``: the O(N D) identity (:func:`conformity`) and the fitted
  estimate (``ConformityEstimate.predict``) at N = 100k.

Run with ``.venv/bin/python -m pytest benchmarks/bench_conformity.py
--benchmark-only -q``. ``gflops_2N2D`` counts ``2 N^2 D`` flops (the pairwise
work a naive method does); ``gemm_fraction`` is the rate of the flops each
method executes (the upper tiles only for deepscope) over the machine's fp32
GEMM ceiling.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from deepscope import embedding as E

torch = pytest.importorskip("torch")

D = 512
N_EXACT = int(os.environ.get("DEEPSCOPE_BENCH_CONFORMITY_N", "20000"))
N_FAST = 100_000


def _cloud(n: int) -> torch.Tensor:
    d = E.double_ellipsoid(n, 1, D, seed=0)
    return torch.from_numpy(d.image)


@pytest.fixture(scope="module")
def exact_set() -> torch.Tensor:
    return _cloud(N_EXACT)


@pytest.fixture(scope="module")
def fast_set() -> torch.Tensor:
    return _cloud(N_FAST)


def naive_torch(x: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """Leave-one-out conformity from full row blocks of the cosine matrix."""
    xn = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
    sums = torch.cat(
        [(xn[i : i + block] @ xn.T).sum(1) for i in range(0, len(x), block)]
    )
    return (sums - 1.0) / (len(x) - 1)


#: fp32 GEMM ceiling of the 2-core development machine (numpy/OpenBLAS sgemm,
#: research/anchors.md); set DEEPSCOPE_BENCH_GEMM_GFLOPS for another machine.
GEMM_GFLOPS = float(os.environ.get("DEEPSCOPE_BENCH_GEMM_GFLOPS", "68.5"))


def _flops(benchmark, n: int, executed: float | None = None) -> None:
    seconds = benchmark.stats.stats.min
    benchmark.extra_info["gflops_2N2D"] = 2.0 * n * n * D / seconds / 1e9
    executed = 2.0 * n * n * D if executed is None else executed
    benchmark.extra_info["gemm_fraction"] = executed / seconds / 1e9 / GEMM_GFLOPS


def _upper_tile_flops(n: int, block: int = E._conformity.BLOCK) -> float:
    """Flops of the GEMMs on and above the diagonal of the block grid."""
    sizes = [min(block, n - i) for i in range(0, n, block)]
    return sum(2.0 * a * b * D for i, a in enumerate(sizes) for b in sizes[i:])


@pytest.mark.benchmark(group=f"conformity-exact-N{N_EXACT}-D512")
def test_exact_deepscope(benchmark, exact_set):
    benchmark.extra_info["method"] = (
        "exact_conformity (upper tiles, block 4096, fused C++ float64 sums)"
    )
    out = benchmark.pedantic(E.exact_conformity, (exact_set,), rounds=2, iterations=1)
    _flops(benchmark, N_EXACT, _upper_tile_flops(N_EXACT))
    np.testing.assert_allclose(out.numpy(), E.conformity(exact_set).numpy(), atol=1e-5)


@pytest.mark.benchmark(group=f"conformity-exact-N{N_EXACT}-D512")
def test_exact_naive_torch(benchmark, exact_set):
    benchmark.extra_info["method"] = "torch row blocks (Xn[blk] @ Xn.T).sum(1)"
    out = benchmark.pedantic(naive_torch, (exact_set,), rounds=2, iterations=1)
    _flops(benchmark, N_EXACT)
    np.testing.assert_allclose(out.numpy(), E.conformity(exact_set).numpy(), atol=1e-5)


@pytest.mark.benchmark(group="conformity-fast-N100k-D512")
def test_identity(benchmark, fast_set):
    benchmark.extra_info["method"] = "conformity (O(N D) identity, GEMVs)"
    benchmark(E.conformity, fast_set)


@pytest.mark.benchmark(group="conformity-fast-N100k-D512")
def test_identity_naive_torch(benchmark, fast_set):
    def identity(x):
        xn = x / torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return xn @ xn.mean(0)

    benchmark.extra_info["method"] = "torch Xn @ Xn.mean(0) (float32)"
    benchmark(identity, fast_set)


@pytest.mark.benchmark(group="conformity-fast-N100k-D512")
def test_estimate_predict(benchmark, fast_set):
    estimate = E.fit_conformity_estimate(fast_set[:20000])
    benchmark.extra_info["method"] = "ConformityEstimate.predict (a cos(m, v) + b)"
    benchmark(estimate.predict, fast_set)
