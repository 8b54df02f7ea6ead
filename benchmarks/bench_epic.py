# Benchmarks of the 12-member EPiC ensemble against a dense N x N reference pipeline.
# SPDX-License-Identifier: MIT
"""Time per batch of the EPiC ensemble (3 PointNets x 4 anchors), B = 32, N = 1024.

``ours`` is :class:`deepscope.robust.EPiC` (FPS anchors, kNN patches,
random-walk curves and random subsets on our kernels, one call per method).
``reference-dense`` builds the same partial clouds the way the EPiC reference
code does (dense N x N distances sorted per row, a dense B x N x N neighbour
mask for the walk; the samplers of ``bench_samplers.py``) and runs the same
backbones. Two groups: the sampling alone, and sampling + the 12 forwards.
Run with

    DEEPSCOPE_BENCH_DATA=/work/data/bench .venv/bin/python -m pytest \\
        benchmarks/bench_epic.py --benchmark-only -q
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from bench_samplers import (  # noqa: E402
    A,
    B,
    reference_curves,
    reference_patches,
    reference_random_shared,
)
from bench_samplers import (  # noqa: E402
    anchors as anchors,  # noqa: PLC0414 (fixture re-export)
)
from bench_samplers import (  # noqa: E402
    clouds as clouds,  # noqa: PLC0414 (fixture re-export)
)

from deepscope.models import PointNet  # noqa: E402
from deepscope.pointcloud import gather_points  # noqa: E402
from deepscope.robust import EPiC  # noqa: E402


@pytest.fixture(scope="module")
def ensemble() -> EPiC:
    torch.manual_seed(0)
    backbones = [PointNet(10, emb_dims=256).eval() for _ in range(3)]
    return EPiC.from_backbones(backbones).eval()


def _reference_partials(x: torch.Tensor, anchors: torch.Tensor) -> list:
    gen = torch.Generator().manual_seed(0)
    return [
        reference_patches(x, anchors),
        reference_curves(x, anchors, gen),
        reference_random_shared(gen),
    ]


def _ours_partials(model: EPiC, x: torch.Tensor) -> list:
    return [member.partial(x, None, 0) for member in model.members]


def _reference_forward(model: EPiC, x: torch.Tensor, anchors: torch.Tensor):
    with torch.no_grad():
        logits = []
        for member, rows in zip(
            model.members, _reference_partials(x, anchors), strict=True
        ):
            parts = gather_points(x, rows)
            S = parts.shape[2]
            out = member.backbone(parts.reshape(B * A, S, 3))
            logits.append(out.reshape(B, A, -1).transpose(0, 1))
        return torch.cat(logits).mean(0)


def test_sampling_reference_dense(benchmark, clouds, anchors):
    benchmark.group = "EPiC sampling (3 methods x 4 anchors) B=32 N=1024"
    x, a = torch.from_numpy(clouds), torch.from_numpy(anchors)
    out = benchmark.pedantic(_reference_partials, (x, a), rounds=3, iterations=1)
    assert out[0].shape == (B, A, 512)


def test_sampling_ours(benchmark, clouds, ensemble):
    benchmark.group = "EPiC sampling (3 methods x 4 anchors) B=32 N=1024"
    x = torch.from_numpy(clouds)
    out = benchmark.pedantic(_ours_partials, (ensemble, x), rounds=3, iterations=1)
    assert out[0].shape == (B, A, 512, 3)


def test_ensemble_reference_dense(benchmark, clouds, anchors, ensemble):
    benchmark.group = "EPiC 12 members PointNet-256 B=32 N=1024"
    x, a = torch.from_numpy(clouds), torch.from_numpy(anchors)
    out = benchmark.pedantic(
        _reference_forward, (ensemble, x, a), rounds=2, iterations=1
    )
    assert out.shape == (B, 10)


def test_ensemble_ours(benchmark, clouds, ensemble):
    benchmark.group = "EPiC 12 members PointNet-256 B=32 N=1024"
    x = torch.from_numpy(clouds)

    def run():
        with torch.no_grad():
            return ensemble(x)

    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert out.shape == (B, 10)
