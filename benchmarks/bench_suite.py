# The `deepscope bench` workloads under pytest-benchmark (one group per workload).
# SPDX-License-Identifier: MIT
"""Every workload of :mod:`deepscope.bench` as pytest-benchmark tests.

The definitions (data, sizes, peers) are the ones ``deepscope bench`` runs,
so both interfaces time the same thing. Run with

    DEEPSCOPE_BENCH_DATA=/work/data/bench .venv/bin/python -m pytest \\
        benchmarks/bench_suite.py --benchmark-only -q

``-k fps`` selects a workload; candidates of missing peers are skipped;
candidates marked slow run 1 round; ``scale`` (brute-force peers timed on a
subset of the queries) is recorded in ``extra_info``, not applied.
"""

from __future__ import annotations

from functools import cache

import pytest

from deepscope import bench

PEERS = bench.installed_peers()
GPU = bench._cuda_usable()
CASES = [
    pytest.param(workload, candidate, id=f"{workload.name}-{candidate.name}")
    for workload in bench.workloads()
    for candidate in workload.candidates
]


@cache
def _data() -> bench.Data:
    return bench.load_data()


@cache
def _state(name: str):
    workload = next(w for w in bench.workloads() if w.name == name)
    return workload.setup(_data(), False)


@pytest.mark.parametrize(("workload", "candidate"), CASES)
def test_workload(benchmark, workload, candidate):
    if workload.cuda and not GPU:
        pytest.skip("no usable CUDA GPU")
    if candidate.peer is not None and PEERS.get(candidate.peer) is None:
        pytest.skip(f"{candidate.peer} not installed")
    data = _data()
    fn = candidate.make(_state(workload.name))
    benchmark.group = workload.title.format(scan=data.scan_name, lidar=data.lidar_name)
    benchmark.name = candidate.name
    benchmark.extra_info["method"] = candidate.name
    benchmark.extra_info["scale"] = candidate.scale
    benchmark.extra_info["data"] = data.source
    rounds = 1 if candidate.slow else 5
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
