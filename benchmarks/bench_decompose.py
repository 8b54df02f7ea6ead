# Inference time per image: a DXAI decomposition vs Captum IG and GradientShap.
# SPDX-License-Identifier: MIT
"""Same frozen SmallCNN, 28 x 28 Fashion-MNIST-sized inputs, batch 32, 1 thread.

Ours: one mapping-network call plus one branched-generator forward
(``DXAI.explain``). Peers: Captum IntegratedGradients (32 steps, zero
baseline) and GradientShap (25 samples, zero baseline). Uses the shipped
checkpoint when present, else an untrained DXAI of the same size (same cost).
Run with ``.venv/bin/python -m pytest benchmarks/bench_decompose.py
--benchmark-only -q``.
"""

from __future__ import annotations

import pytest
import torch

from deepscope.decompose import DXAI, SmallCNN, attribution_methods
from deepscope.decompose._default import DEFAULT_CHECKPOINT, SMALL_CONFIG, load_bundle

GROUP = "decompose-28x28-batch32-1thread"
BATCH = 32


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    if DEFAULT_CHECKPOINT.exists():
        b = load_bundle()
        clf, dx = b.classifier, b.dxai
    else:
        clf = SmallCNN(1, 10).eval()
        dx = DXAI(clf, 10, 1, (28, 28), SMALL_CONFIG)
    x = torch.randn(BATCH, 1, 28, 28).clamp(-1, 1)
    y = torch.randint(0, 10, (BATCH,))
    return clf, dx, x, y


@pytest.mark.benchmark(group=GROUP)
def test_dxai(benchmark, setup):
    clf, dx, x, y = setup
    benchmark(dx.explain, x, y)


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("name", ["IntegratedGradients", "GradientShap"])
def test_captum(benchmark, setup, name):
    pytest.importorskip("captum")
    clf, dx, x, y = setup
    method = attribution_methods(ig_steps=32, shap_samples=25)[name]
    benchmark(method, clf, x, y)
