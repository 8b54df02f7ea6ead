# Labelled point-cloud data sets: Fashion-MNIST and digits as points, ModelNet40 HDF5.
# SPDX-License-Identifier: MIT
"""Labelled point-cloud classification data that works offline.

Every loader returns a :class:`PointSet` ``(points, labels, class_names)`` with
``points`` of shape ``(S, N, 3)`` float32 and ``labels`` of shape ``(S,)``
int64.

* :func:`fashion_mnist_points`: the 70,000 Fashion-MNIST images (10 classes)
  turned into 2.5-D point clouds by :func:`images_to_points`. The images come
  from the Debian package ``dataset-fashion-mnist``
  (``apt-get install -y dataset-fashion-mnist``), which installs them in
  ``/usr/share/datasets/fashion-mnist``; ``root`` or the environment variable
  ``DEEPSCOPE_FASHION_MNIST`` point elsewhere.
* :func:`digits_points`: the 1,797 8x8 handwritten digits bundled with
  scikit-learn (no download), for fast tests.
* :func:`modelnet40_h5`: the official ``modelnet40_ply_hdf5_2048`` files, for
  users who have them (needs h5py).

Image to points (:func:`images_to_points`): each point picks a pixel with
probability proportional to its intensity (exact integer inverse-CDF
sampling, with replacement), moves uniformly within that pixel (sub-pixel
jitter), and gets ``x, y`` in ``[-1, 1]`` (``y`` up), ``z = height *
intensity / max_intensity``; each cloud is then centred on its mean and
scaled so that its farthest point lies on the unit sphere. A blank image
samples its pixels uniformly. Randomness comes from ``seed``; sample ``i``
gets the same points whatever ``limit`` is.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = [
    "DIGITS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "PointSet",
    "digits_points",
    "fashion_mnist_images",
    "fashion_mnist_points",
    "images_to_points",
    "modelnet40_h5",
]

logger = logging.getLogger(__name__)

#: Where the Debian package ``dataset-fashion-mnist`` installs the images.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Fashion-MNIST label names, in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Digit label names, in label order.
DIGITS_CLASSES = tuple(str(d) for d in range(10))

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: Fraction of the scikit-learn digits held out as the test split.
_DIGITS_TEST_FRACTION = 0.25
#: Seed of the fixed digits train/test split (independent of the caller's seed).
_DIGITS_SPLIT_SEED = 20240601
#: Floating-point images are quantised to this many levels for exact sampling.
_FLOAT_LEVELS = 1 << 20
#: Images converted at a time by images_to_points.
_CHUNK = 2048


class PointSet(NamedTuple):
    """A labelled point-cloud data set.

    Attributes:
        points: (S, N, 3) float32 clouds.
        labels: (S,) int64 class indices into ``class_names``.
        class_names: the name of each class, in label order.
    """

    points: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]


def images_to_points(
    images: np.ndarray,
    n_points: int = 256,
    *,
    seed: int = 0,
    height: float = 0.5,
    max_intensity: float | None = None,
) -> np.ndarray:
    """Turns grey-scale images into 2.5-D point clouds.

    Args:
        images: (S, H, W) non-negative intensities (any real or integer dtype).
        n_points: points per cloud, >= 1.
        seed: seed of the pixel draws and the jitter.
        height: ``z`` of a pixel at ``max_intensity`` before normalisation.
        max_intensity: intensity mapped to ``height`` (default: the largest
            value in ``images``, or 255 for uint8 images).

    Returns:
        (S, n_points, 3) float32 clouds, each centred on its mean with its
        farthest point at distance 1 (a cloud of one repeated point stays at 0).
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images: expected (S, H, W), got shape {images.shape}")
    n_points = check_count(n_points, "n_points")
    if not np.issubdtype(images.dtype, np.number) or np.iscomplexobj(images):
        raise ValueError(f"images: expected real intensities, got {images.dtype}")
    if images.size and (not np.isfinite(images).all() or images.min() < 0):
        raise ValueError("images: expected finite non-negative intensities")
    if max_intensity is None:
        if images.dtype == np.uint8:
            max_intensity = 255.0
        else:
            max_intensity = float(images.max()) if images.size else 1.0
    max_intensity = max(float(max_intensity), np.finfo(np.float64).tiny)
    S, H, W = images.shape
    if S == 0:
        return np.zeros((0, n_points, 3), np.float32)
    if H == 0 or W == 0:
        raise ValueError(f"images: expected non-empty images, got shape {images.shape}")

    # Chunks bound the memory; consecutive draws from one stream equal one big draw.
    uniform_rng, jitter_rng = (
        np.random.Generator(np.random.PCG64(s))
        for s in np.random.SeedSequence(check_seed(seed)).spawn(2)
    )
    out = np.empty((S, n_points, 3), np.float32)
    for start in range(0, S, _CHUNK):
        stop = min(start + _CHUNK, S)
        out[start:stop] = _sample_chunk(
            images[start:stop], n_points, uniform_rng, jitter_rng, height, max_intensity
        )
    return out


def _sample_chunk(
    images: np.ndarray,
    n_points: int,
    uniform_rng: np.random.Generator,
    jitter_rng: np.random.Generator,
    height: float,
    max_intensity: float,
) -> np.ndarray:
    """:func:`images_to_points` on (S, H, W) images with the given streams."""
    S, H, W = images.shape

    # Integer sampling weights: the intensities themselves, or a fine quantisation.
    if np.issubdtype(images.dtype, np.integer):
        weights = images.reshape(S, H * W).astype(np.int64)
    else:
        flat = images.reshape(S, H * W).astype(np.float64)
        peak = np.maximum(flat.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        weights = np.rint(flat * (_FLOAT_LEVELS / peak)).astype(np.int64)
    blank = weights.sum(axis=1) == 0
    weights[blank] = 1

    # Exact inverse-CDF draws: one global cumulative sum, offsets per image.
    cumulative = np.cumsum(weights.ravel())
    totals = cumulative[H * W - 1 :: H * W]
    offsets = np.concatenate(([0], totals[:-1]))
    draws = uniform_rng.random((S, n_points))
    targets = np.minimum(
        (draws * (totals - offsets)[:, None]).astype(np.int64),
        (totals - offsets)[:, None] - 1,
    )
    flat = np.searchsorted(cumulative, targets + offsets[:, None], side="right")
    pixel = flat - np.arange(S)[:, None] * (H * W)

    # Pixel centres plus sub-pixel jitter, x right and y up in [-1, 1].
    row, col = np.divmod(pixel, W)
    jitter = jitter_rng.random((S, n_points, 2))
    x = (col + jitter[..., 0]) / W * 2.0 - 1.0
    y = 1.0 - (row + jitter[..., 1]) / H * 2.0
    intensity = np.take_along_axis(images.reshape(S, H * W), pixel, axis=1)
    z = height * intensity.astype(np.float64) / max_intensity
    points = np.stack([x, y, z], axis=-1)

    # Centre each cloud and scale it into the unit sphere.
    points -= points.mean(axis=1, keepdims=True)
    radius = np.linalg.norm(points, axis=-1).max(axis=1, keepdims=True)
    points /= np.where(radius > 0, radius, 1.0)[..., None]
    return points.astype(np.float32)


def fashion_mnist_images(
    split: str = "train", *, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The raw Fashion-MNIST images and labels of one split (read once, cached).

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: folder holding the four ``*-ubyte.gz`` files (default:
            ``$DEEPSCOPE_FASHION_MNIST`` or ``/usr/share/datasets/fashion-mnist``).

    Returns:
        ``(images (S, 28, 28) uint8, labels (S,) uint8)``, both read-only.

    Raises:
        FileNotFoundError: the files are missing; the message names the Debian
            package that installs them.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    folder = Path(
        root or os.environ.get("DEEPSCOPE_FASHION_MNIST") or FASHION_MNIST_DIR
    )
    image_file, label_file = (folder / name for name in _FASHION_FILES[split])
    for path in (image_file, label_file):
        if not path.is_file():
            raise FileNotFoundError(
                f"Fashion-MNIST file not found: {path} (install it with "
                "'apt-get install -y dataset-fashion-mnist', or point the "
                "DEEPSCOPE_FASHION_MNIST environment variable (or root=) at "
                "a folder holding the four idx files)"
            )
    images = _read_idx(image_file)
    labels = _read_idx(label_file)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"{folder}: images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels


def fashion_mnist_points(
    split: str = "train",
    n_points: int = 256,
    *,
    seed: int = 0,
    limit: int | None = None,
    root: str | os.PathLike[str] | None = None,
) -> PointSet:
    """Fashion-MNIST as labelled 2.5-D point clouds (see :func:`images_to_points`).

    Args:
        split: ``"train"`` (60,000 clouds) or ``"test"`` (10,000).
        n_points: points per cloud.
        seed: seed of the image-to-points sampling.
        limit: keep only the first ``limit`` images of the split.
        root: folder holding the four ``*-ubyte.gz`` files (default:
            ``$DEEPSCOPE_FASHION_MNIST`` or ``/usr/share/datasets/fashion-mnist``).

    Returns:
        A :class:`PointSet` with (S, n_points, 3) float32 points, (S,) int64
        labels and the 10 class names.

    Raises:
        FileNotFoundError: the files are missing; the message names the Debian
            package that installs them.
    """
    images, labels = fashion_mnist_images(split, root=root)
    count = _check_limit(limit, len(labels))
    points = images_to_points(images[:count], n_points, seed=seed, max_intensity=255)
    return PointSet(points, labels[:count].astype(np.int64), FASHION_MNIST_CLASSES)


def digits_points(
    split: str = "train",
    n_points: int = 256,
    *,
    seed: int = 0,
    limit: int | None = None,
) -> PointSet:
    """scikit-learn's 8x8 handwritten digits as labelled 2.5-D point clouds.

    The 1,797 images ship inside scikit-learn (no download). A fixed seeded
    split (independent of ``seed``) holds out 25 % of them as ``"test"``
    (449 images; 1,348 for ``"train"``). With 64 pixels per image the clouds
    repeat pixels; the sub-pixel jitter spreads the repeats out.

    Args:
        split: ``"train"`` or ``"test"``.
        n_points: points per cloud.
        seed: seed of the image-to-points sampling.
        limit: keep only the first ``limit`` images of the split.

    Returns:
        A :class:`PointSet` with (S, n_points, 3) float32 points, (S,) int64
        labels and the class names ``"0"`` ... ``"9"``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "digits_points needs scikit-learn (pip install scikit-learn)"
        ) from error
    digits = load_digits()
    images = np.rint(digits.images).astype(np.uint8)  # integer levels 0..16
    labels = digits.target.astype(np.int64)

    # A fixed permutation splits the set, then each split keeps the original order.
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(labels))
    n_test = round(len(labels) * _DIGITS_TEST_FRACTION)
    chosen = np.sort(order[:n_test] if split == "test" else order[n_test:])
    count = _check_limit(limit, len(chosen))
    chosen = chosen[:count]
    points = images_to_points(images[chosen], n_points, seed=seed, max_intensity=16)
    return PointSet(points, labels[chosen], DIGITS_CLASSES)


def modelnet40_h5(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    n_points: int | None = None,
    limit: int | None = None,
) -> PointSet:
    """Reads the official ModelNet40 HDF5 files (``modelnet40_ply_hdf5_2048``).

    Args:
        root: the ``modelnet40_ply_hdf5_2048`` folder, or a folder containing it.
            It holds ``ply_data_train{i}.h5`` / ``ply_data_test{i}.h5`` (each
            with ``data`` (S, 2048, 3) and ``label`` (S, 1)) and, normally,
            ``shape_names.txt`` (one class name per line).
        split: ``"train"`` or ``"test"``.
        n_points: keep the first ``n_points`` points of each cloud (default all).
        limit: keep only the first ``limit`` clouds.

    Returns:
        A :class:`PointSet` (class names ``"0"``, ``"1"``, ... when
        ``shape_names.txt`` is missing).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    folder = Path(root)
    if (folder / "modelnet40_ply_hdf5_2048").is_dir():
        folder = folder / "modelnet40_ply_hdf5_2048"
    pattern = re.compile(rf"ply_data_{split}(\d+)\.h5$")
    files = sorted(
        (int(m.group(1)), path)
        for path in folder.glob(f"ply_data_{split}*.h5")
        if (m := pattern.search(path.name))
    )
    if not files:
        raise FileNotFoundError(f"no ply_data_{split}*.h5 files in {folder}")
    try:
        import h5py
    except ImportError as error:
        raise ImportError("modelnet40_h5 needs h5py (pip install h5py)") from error

    chunks, label_chunks = [], []
    for _, path in files:
        with h5py.File(path, "r") as handle:
            chunks.append(np.asarray(handle["data"], dtype=np.float32))
            label_chunks.append(
                np.asarray(handle["label"]).reshape(-1).astype(np.int64)
            )
    points = np.concatenate(chunks)
    labels = np.concatenate(label_chunks)
    if points.ndim != 3 or points.shape[-1] != 3 or len(points) != len(labels):
        raise ValueError(
            f"{folder}: expected data (S, N, 3) and label (S, 1), got "
            f"{points.shape} and {labels.shape}"
        )
    if n_points is not None:
        if not 1 <= n_points <= points.shape[1]:
            raise ValueError(
                f"n_points: expected 1 <= n_points <= {points.shape[1]}, got {n_points}"
            )
        points = points[:, :n_points]
    count = _check_limit(limit, len(labels))

    names_file = folder / "shape_names.txt"
    if names_file.is_file():
        names = tuple(line.strip() for line in names_file.read_text().splitlines())
        names = tuple(name for name in names if name)
    else:
        names = tuple(str(i) for i in range(int(labels.max(initial=-1)) + 1))
    return PointSet(np.ascontiguousarray(points[:count]), labels[:count], names)


@cache
def _read_idx_cached(path: str, mtime: float) -> np.ndarray:
    data = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    array.flags.writeable = False
    logger.info("read %s: %s", path, array.shape)
    return array


def _read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file of unsigned bytes (optionally gzipped), cached."""
    return _read_idx_cached(str(path), path.stat().st_mtime)


def _check_limit(limit: int | None, available: int) -> int:
    if limit is None:
        return available
    return min(check_count(limit, "limit", 0), available)
