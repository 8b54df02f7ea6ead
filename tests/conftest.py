# Shared test fixtures: frameworks x devices, CUDA skip marks, seeds.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import deepscope

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_CUPY = importlib.util.find_spec("cupy") is not None


def _gpu_usable() -> bool:
    if not deepscope.cuda_available():
        return False
    if HAS_TORCH:
        import torch

        return torch.cuda.is_available()
    return HAS_CUPY


HAS_GPU = _gpu_usable()


class Backend:
    """One framework on one device: moves NumPy test data there and back."""

    def __init__(self, framework: str, device: str):
        self.framework = framework
        self.device = device

    def __repr__(self) -> str:
        return f"{self.framework}-{self.device}"

    def asarray(self, a: np.ndarray):
        a = np.asarray(a)
        if self.framework == "numpy":
            return a.copy()
        if self.framework == "torch":
            import torch

            return torch.from_numpy(a.copy()).to(self.device)
        import cupy

        return cupy.asarray(a)

    def is_native(self, x) -> bool:
        """True when ``x`` belongs to this framework and device."""
        if self.framework == "numpy":
            return isinstance(x, np.ndarray)
        if self.framework == "torch":
            import torch

            return isinstance(x, torch.Tensor) and x.device.type == self.device
        import cupy

        return isinstance(x, cupy.ndarray)


def to_numpy(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "get"):
        return x.get()
    return np.asarray(x)


def _backend_params():
    params = [pytest.param(Backend("numpy", "cpu"), id="numpy-cpu")]
    torch_skip = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
    params.append(
        pytest.param(Backend("torch", "cpu"), id="torch-cpu", marks=torch_skip)
    )
    params.append(
        pytest.param(
            Backend("torch", "cuda"),
            id="torch-cuda",
            marks=[torch_skip, pytest.mark.cuda],
        )
    )
    cupy_skip = pytest.mark.skipif(not HAS_CUPY, reason="cupy not installed")
    params.append(
        pytest.param(
            Backend("cupy", "cuda"), id="cupy-cuda", marks=[cupy_skip, pytest.mark.cuda]
        )
    )
    return params


BACKENDS = _backend_params()


@pytest.fixture(params=BACKENDS)
def backend(request) -> Backend:
    """Every framework x device this machine supports."""
    return request.param


def pytest_collection_modifyitems(config, items):
    if HAS_GPU:
        return
    skip = pytest.mark.skip(reason="no usable CUDA GPU (or CUDA not compiled)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261203)
