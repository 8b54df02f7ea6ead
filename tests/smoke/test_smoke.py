# Smoke tests of an installed deepscope: import, build facts, every kernel once.
# SPDX-License-Identifier: MIT
"""A few seconds of checks that a built wheel works where it is installed.

Self-contained (NumPy and pytest only, no imports from the test suite), so
``tools/wheel_smoke.sh`` can copy this file into a fresh virtual environment
and cibuildwheel can run it against each wheel. The main test suite runs it
too. With ``DEEPSCOPE_SMOKE_INSTALLED=1`` it also checks that deepscope was
imported from an installed wheel (site-packages), not from a source tree.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import pytest

import deepscope
from deepscope import importance, pointcloud

INSTALLED = os.environ.get("DEEPSCOPE_SMOKE_INSTALLED") == "1"
installed_only = pytest.mark.skipif(
    not INSTALLED, reason="set DEEPSCOPE_SMOKE_INSTALLED=1 to check an installed wheel"
)


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 300, 3))


def test_info_and_version():
    facts = deepscope.info()
    assert facts["version"] == deepscope.__version__
    assert metadata.version("deepscope") == deepscope.__version__
    assert facts["omp_max_threads"] >= 1
    # Without a GPU (or without CUDA in the build) nothing is usable, and
    # importing still worked: the driver library is never a hard dependency.
    if not facts["cuda_available"]:
        assert facts["cuda_device_count"] == 0 or not facts["cuda_compiled"]
    expected = os.environ.get("DEEPSCOPE_SMOKE_EXPECT_CUDA")
    if expected is not None:
        assert facts["cuda_compiled"] == (expected == "1")


@installed_only
def test_imported_from_installed_wheel():
    location = Path(deepscope.__file__).resolve()
    assert "site-packages" in location.parts, location
    assert location.is_relative_to(Path(sys.prefix).resolve()), location
    assert (location.parent / "py.typed").is_file()
    files = metadata.files("deepscope") or []
    assert any(f.name.startswith("_core") for f in files)


def test_package_data_present():
    data = resources.files("deepscope").joinpath("data", "bunny.ply")
    assert data.is_file()
    assert data.read_bytes().startswith(b"ply")


def test_farthest_point_sample(cloud):
    result = pointcloud.farthest_point_sample(cloud, 16)
    assert result.indices.shape == (2, 16)
    assert (result.counts == 16).all()
    # Brute force check of the second sample: farthest from the first.
    d2 = ((cloud[0] - cloud[0, 0]) ** 2).sum(-1)
    assert result.indices[0, 1] == int(np.argmax(d2))


def test_knn_and_ball_query(cloud):
    result = pointcloud.knn(cloud, k=4)
    d2 = ((cloud[0][:, None] - cloud[0][None]) ** 2).sum(-1)
    np.testing.assert_array_equal(
        result.indices[0], np.argsort(d2, axis=1, kind="stable")[:, :4]
    )
    ball = pointcloud.ball_query(cloud, radius=0.5, max_neighbors=8)
    assert ball.indices.shape == (2, 300, 8)
    assert (ball.counts >= 1).all()  # every point is in its own ball


def test_samplers(cloud):
    parts = pointcloud.partial_clouds(cloud, "patch", n_anchors=2, size=32)
    assert parts.indices.shape == (2, 2, 32)
    curves = pointcloud.random_walk_curves(cloud, parts.anchors, 16, k=5, seed=1)
    assert (curves.counts == 16).all()
    subsets = pointcloud.random_subsets(cloud, 10, 3, seed=2)
    assert subsets.indices.shape == (2, 3, 10)
    xyz = pointcloud.gather_points(cloud, subsets.indices)
    assert xyz.shape == (2, 3, 10, 3)


def test_importance():
    rng = np.random.default_rng(1)
    features = np.maximum(rng.standard_normal((2, 64, 100)), 0)
    stats = importance.importance_stats(features)
    np.testing.assert_allclose(stats.norms, np.linalg.norm(features, axis=1))
    assert stats.counts.sum() == 2 * 64
    assert ((stats.entropy >= 0) & (stats.entropy <= 1)).all()
    indices, k = importance.adaptive_subset(features)
    assert indices.shape[0] == 2
    assert (k >= 1).all()


def test_errors_are_value_errors(cloud):
    with pytest.raises(ValueError, match="n_samples"):
        pointcloud.farthest_point_sample(cloud, 301)
    bad = cloud.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="points"):
        pointcloud.farthest_point_sample(bad, 4)
