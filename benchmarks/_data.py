# Real scans for the benchmarks, fetched by benchmarks/fetch_data.sh.
# SPDX-License-Identifier: MIT
"""Loads the benchmark point sets; run ``benchmarks/fetch_data.sh`` first.

The data folder is ``$DEEPSCOPE_BENCH_DATA`` or ``benchmarks/data``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("DEEPSCOPE_BENCH_DATA", Path(__file__).parent / "data"))


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; run benchmarks/fetch_data.sh to fetch the real "
            "scans the benchmarks use"
        )
    return path


def _cached(name: str) -> np.ndarray | None:
    """A NumPy copy written by fetch_data.sh (used where trimesh/laspy are absent)."""
    path = DATA / f"{name}.npy"
    return np.load(path) if path.exists() else None


@cache
def stanford_bunny() -> np.ndarray:
    """The raw Stanford bunny scan: (50000, 3) float64 vertices."""
    if (cached := _cached("stanford_bunny")) is not None:
        return cached
    import trimesh

    mesh = trimesh.load(_require(DATA / "pymeshfix" / "StanfordBunny.ply"))
    return np.asarray(mesh.vertices, dtype=np.float64)


@cache
def autzen() -> np.ndarray:
    """Autzen Stadium aerial LiDAR: (110000, 3) float64, centred, metres."""
    if (cached := _cached("autzen")) is not None:
        return cached
    import laspy

    las = laspy.read(_require(DATA / "laspy" / "autzen_trim.laz"))
    xyz = np.column_stack([las.x, las.y, las.z]).astype(np.float64)
    return xyz - xyz.mean(axis=0)


def autzen_100k() -> np.ndarray:
    """The first 100,000 Autzen points: (100000, 3) float64."""
    return autzen()[:100_000].copy()
