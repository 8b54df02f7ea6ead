# Benchmarks of the fused CMD pass against the straightforward NumPy algorithm.
# SPDX-License-Identifier: MIT
"""CMD assignment + affine fit at ResNet-18 scale: N = 11M, T = 21, M = 10.

Ours: one fused pass (:func:`deepscope.dynamics.assign_and_fit`, float64
accumulation over shifted data) on the (N, T) float32 window and on the
(T, N) snapshot layout. Peer: the straightforward NumPy implementation of
the reference algorithm (full-array float64 raw sums, ``W @ R.T``, argmax
|rho|, a, b; ``tests.reference.cmd_full_numpy``) on the same data, run in
1M-row chunks to bound its memory (the anchor measured the full-array
variant at 6.69 s and the chunked one at 5.92 s). The floor is ``W.copy()``.
Run with ``.venv/bin/python -m pytest benchmarks/bench_cmd.py --benchmark-only
-q``; ``DEEPSCOPE_BENCH_CMD_N`` overrides N.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from deepscope.dynamics import assign_and_fit

from tests.reference import cmd_full_numpy

N = int(os.environ.get("DEEPSCOPE_BENCH_CMD_N", 11_000_000))
T, M = 21, 10
CHUNK = 1_000_000
GROUP = f"cmd-cpu-N{N}-T{T}-M{M}"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    refs = np.cumsum(rng.standard_normal((M, T)), axis=1)
    modes = rng.integers(0, M, N)
    a = rng.standard_normal(N).astype(np.float32)
    w = np.empty((N, T), np.float32)
    for s in range(0, N, CHUNK):
        e = min(s + CHUNK, N)
        noise = rng.standard_normal((e - s, T), dtype=np.float32)
        w[s:e] = a[s:e, None] * refs[modes[s:e]] + noise
    return w, refs


def numpy_chunked(w, refs):
    out = [cmd_full_numpy(w[s : s + CHUNK], refs) for s in range(0, len(w), CHUNK)]
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


@pytest.mark.benchmark(group=GROUP)
def test_cmd_deepscope_nt(benchmark, data):
    w, refs = data
    benchmark.extra_info["method"] = "deepscope assign_and_fit, (N, T) float32"
    benchmark.extra_info["bytes_read"] = w.nbytes
    out = benchmark.pedantic(
        assign_and_fit,
        args=(w, refs),
        kwargs={"time_major": False, "diagnostics": False},
        rounds=3,
        warmup_rounds=1,
    )
    check = slice(0, 200_000)
    modes, a, b = cmd_full_numpy(w[check], refs)
    np.testing.assert_array_equal(out.modes[check], modes)
    np.testing.assert_allclose(out.a[check], a, rtol=1e-4, atol=1e-5)


@pytest.mark.benchmark(group=GROUP)
def test_cmd_deepscope_tn(benchmark, data):
    w, refs = data
    wt = np.ascontiguousarray(w.T)
    benchmark.extra_info["method"] = "deepscope assign_and_fit, (T, N) float32"
    benchmark.pedantic(
        assign_and_fit,
        args=(wt, refs),
        kwargs={"time_major": True, "diagnostics": False},
        rounds=3,
        warmup_rounds=1,
    )


@pytest.mark.benchmark(group=GROUP)
def test_cmd_numpy_reference(benchmark, data):
    w, refs = data
    benchmark.extra_info["method"] = "NumPy float64 raw sums, 1M-row chunks"
    benchmark.pedantic(numpy_chunked, args=(w, refs), rounds=1, warmup_rounds=0)


@pytest.mark.benchmark(group=GROUP)
def test_copy_floor(benchmark, data):
    w, _ = data
    benchmark.extra_info["method"] = "W.copy() (read + write floor)"
    benchmark.pedantic(w.copy, rounds=3, warmup_rounds=1)


# ------------------------------------------------------------------- GPU
# Selected by tools/gpu_check.sh (-k "cuda or gpu"); skipped without a GPU.

N_GPU = int(os.environ.get("DEEPSCOPE_BENCH_CMD_N_GPU", 100_000_000))


def _cuda_or_skip():
    torch = pytest.importorskip("torch")
    import deepscope

    if not (deepscope.cuda_available() and torch.cuda.is_available()):
        pytest.skip("no usable CUDA GPU")
    return torch


def torch_reference(w, refs):
    """The straightforward float64 torch version on the GPU, (T, N) input."""
    import torch

    W = w.double()
    R = torch.as_tensor(refs, dtype=torch.float64, device=w.device)
    t = W.shape[0]
    sx, sxx, sxy = W.sum(0), (W * W).sum(0), R @ W
    sr, srr = R.sum(1), (R * R).sum(1)
    num = t * sxy - sr[:, None] * sx[None, :]
    den = torch.sqrt(((t * srr - sr * sr)[:, None] * (t * sxx - sx * sx)[None]).abs())
    rho = torch.nan_to_num(num / den)
    modes = rho.abs().argmax(0)
    cols = torch.arange(W.shape[1], device=w.device)
    a = num[modes, cols] / (t * srr - sr * sr)[modes]
    b = (sx - a * sr[modes]) / t
    return modes, a, b


@pytest.mark.parametrize("n", [11_000_000, N_GPU])
@pytest.mark.benchmark(group="cmd-cuda-T21-M10")
def test_cmd_deepscope_cuda(benchmark, n):
    torch = _cuda_or_skip()
    gen = torch.Generator(device="cuda").manual_seed(0)
    w = torch.randn(T, n, device="cuda", generator=gen)
    refs = np.cumsum(np.random.default_rng(0).standard_normal((M, T)), axis=1)

    def run():
        out = assign_and_fit(w, refs, diagnostics=False)
        torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    benchmark.extra_info["method"] = f"deepscope assign_and_fit CUDA, (T, N={n})"
    benchmark.extra_info["GB_read"] = w.numel() * 4 / 1e9
    modes, a, _ = torch_reference(w[:, :1_000_000], refs)
    assert torch.equal(out.modes[:1_000_000], modes)


@pytest.mark.parametrize("n", [11_000_000, N_GPU])
@pytest.mark.benchmark(group="cmd-cuda-T21-M10")
def test_cmd_torch_reference_cuda(benchmark, n):
    torch = _cuda_or_skip()
    gen = torch.Generator(device="cuda").manual_seed(0)
    w = torch.randn(T, n, device="cuda", generator=gen)
    refs = np.cumsum(np.random.default_rng(0).standard_normal((M, T)), axis=1)

    def run():
        out = torch_reference(w, refs)
        torch.cuda.synchronize()
        return out

    benchmark.extra_info["method"] = "torch float64 raw sums on the GPU"
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
