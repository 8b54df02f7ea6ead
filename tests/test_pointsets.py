# Tests for deepscope.pointsets: image-to-points sampling and the labelled loaders.
# SPDX-License-Identifier: MIT
from __future__ import annotations

import gzip
import importlib.util

import numpy as np
import pytest

from deepscope import pointsets
from deepscope.pointsets import images_to_points

HAS_FMNIST = (pointsets.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(
    not HAS_FMNIST, reason="apt-get install -y dataset-fashion-mnist"
)
needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None, reason="needs scikit-learn"
)


def _images(seed: int = 0, count: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), np.uint8)


def test_images_to_points_shape_dtype_and_unit_sphere():
    points = images_to_points(_images(), 100, seed=3)
    assert points.shape == (5, 100, 3)
    assert points.dtype == np.float32
    np.testing.assert_allclose(points.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(points, axis=-1).max(axis=1), 1, atol=1e-6
    )


def test_images_to_points_is_seeded_and_prefix_stable():
    images = _images(count=3000)  # more than one internal chunk
    a = images_to_points(images, 32, seed=7)
    np.testing.assert_array_equal(a, images_to_points(images, 32, seed=7))
    np.testing.assert_array_equal(a[:10], images_to_points(images[:10], 32, seed=7))
    assert not np.array_equal(a, images_to_points(images, 32, seed=8))


def test_images_to_points_never_samples_zero_pixels():
    image = np.zeros((1, 10, 10), np.uint8)
    image[0, 2, 7] = 255
    image[0, 8, 1] = 1
    points = images_to_points(image, 5000, seed=0, height=0.0)
    # Two pixels only: every point lies in one of two small squares.
    assert len(np.unique(np.round(points[0, :, 0], 0))) <= 2
    assert np.ptp(points[0, :, 2]) == 0


def test_images_to_points_weights_pixels_by_intensity():
    image = np.zeros((1, 2, 2), np.uint8)
    image[0, 0, 0], image[0, 1, 1] = 200, 50  # top-left 4x as bright
    raw = images_to_points(image, 20_000, seed=1, height=1.0)[0]
    # Brighter points have larger z before normalisation: z is affine in intensity.
    bright = raw[:, 2] > raw[:, 2].mean()
    assert abs(bright.mean() - 0.8) < 0.01
    # Bright pixel is top-left: small x, large y.
    assert raw[bright, 0].mean() < raw[~bright, 0].mean()
    assert raw[bright, 1].mean() > raw[~bright, 1].mean()


def test_images_to_points_jitter_stays_inside_the_pixel():
    image = np.zeros((1, 4, 4), np.float64)
    image[0, 1, 2] = 1.0
    image[0, 3, 0] = 1.0
    # Unnormalised coordinates: compare x, y ranges through the two clusters.
    points = images_to_points(image, 4000, seed=0, height=0.0)[0]
    left = points[:, 0] < points[:, 0].mean()
    assert np.ptp(points[left, 0]) == pytest.approx(np.ptp(points[~left, 0]), rel=0.05)
    assert 0.3 < left.mean() < 0.7


def test_images_to_points_blank_image_samples_uniformly():
    points = images_to_points(np.zeros((1, 8, 8), np.uint8), 4000, seed=0)
    assert np.isfinite(points).all()
    assert np.ptp(points[0, :, 2]) == 0
    assert np.ptp(points[0, :, 0]) > 1.2


def test_images_to_points_float_and_integer_images_agree():
    images = _images(count=4) // 16
    a = images_to_points(images, 64, seed=2, max_intensity=15)
    b = images_to_points(images.astype(np.float64), 64, seed=2, max_intensity=15)
    np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("images", "n_points", "match"),
    [
        (np.zeros((2, 3)), 4, "images"),
        (-np.ones((1, 3, 3)), 4, "non-negative"),
        (np.full((1, 3, 3), np.nan), 4, "finite"),
        (np.ones((1, 3, 3)), 0, "n_points"),
    ],
)
def test_images_to_points_rejects_bad_input(images, n_points, match):
    with pytest.raises(ValueError, match=match):
        images_to_points(images, n_points)


def test_images_to_points_empty_batch():
    assert images_to_points(np.zeros((0, 4, 4)), 8).shape == (0, 8, 3)


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_points_reads_idx_files(tmp_path):
    images = _images(count=6)
    labels = np.arange(6) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    data = pointsets.fashion_mnist_points("test", 16, root=tmp_path, limit=4)
    assert data.points.shape == (4, 16, 3)
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, labels[:4])
    np.testing.assert_array_equal(
        data.points, images_to_points(images[:4], 16, seed=0, max_intensity=255)
    )
    assert data.class_names[0] == "T-shirt/top"


def test_fashion_mnist_points_missing_files_name_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        pointsets.fashion_mnist_points("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        pointsets.fashion_mnist_points("valid", root=tmp_path)


@needs_fmnist
def test_fashion_mnist_points_real_test_split():
    data = pointsets.fashion_mnist_points("test", 64, limit=1000)
    assert data.points.shape == (1000, 64, 3)
    assert len(data.class_names) == 10
    assert np.bincount(data.labels, minlength=10).min() > 50
    full = pointsets.fashion_mnist_points("test", 64)
    assert len(full.labels) == 10_000
    np.testing.assert_array_equal(full.points[:1000], data.points)


@needs_sklearn
def test_digits_points_splits_are_disjoint_and_fixed():
    train = pointsets.digits_points("train", 32)
    test = pointsets.digits_points("test", 32)
    assert len(train.labels) + len(test.labels) == 1797
    assert len(test.labels) == 449
    assert set(np.unique(test.labels)) == set(range(10))
    again = pointsets.digits_points("test", 32, limit=20)
    np.testing.assert_array_equal(again.points, test.points[:20])
    assert train.class_names == pointsets.DIGITS_CLASSES


def test_modelnet40_h5_reads_official_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    folder = tmp_path / "modelnet40_ply_hdf5_2048"
    folder.mkdir()
    rng = np.random.default_rng(0)
    parts = []
    for i, count in enumerate((3, 2)):
        data = rng.normal(size=(count, 2048, 3)).astype(np.float32)
        label = rng.integers(0, 40, (count, 1)).astype(np.uint8)
        parts.append((data, label))
        with h5py.File(folder / f"ply_data_test{i}.h5", "w") as f:
            f["data"], f["label"] = data, label
    with h5py.File(folder / "ply_data_train0.h5", "w") as f:
        f["data"], f["label"] = parts[0]
    (folder / "shape_names.txt").write_text(
        "\n".join(f"class{i}" for i in range(40)) + "\n"
    )

    test = pointsets.modelnet40_h5(tmp_path, "test", n_points=1024)
    assert test.points.shape == (5, 1024, 3)
    np.testing.assert_array_equal(test.points[3:], parts[1][0][:, :1024])
    np.testing.assert_array_equal(test.labels[:3], parts[0][1].ravel())
    assert test.labels.dtype == np.int64
    assert len(test.class_names) == 40
    assert pointsets.modelnet40_h5(folder, "train", limit=2).points.shape[0] == 2
    with pytest.raises(ValueError, match="n_points"):
        pointsets.modelnet40_h5(folder, "test", n_points=4096)
    with pytest.raises(FileNotFoundError):
        pointsets.modelnet40_h5(tmp_path / "nothing", "test")
