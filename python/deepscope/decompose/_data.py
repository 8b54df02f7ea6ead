# Image loaders for the decomposition module: scikit-learn digits and Fashion-MNIST.
# SPDX-License-Identifier: MIT
"""Small real image sets as torch tensors normalised to [-1, 1].

Images are returned as ``(S, 1, H, W)`` float32 tensors with ``x = (p - 0.5) / 0.5``
for pixel intensities ``p`` in [0, 1]; :data:`IMAGE_MEAN` and :data:`IMAGE_STD`
undo it (``p = x * std + mean``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch

from deepscope._arrays import check_count, check_seed

__all__ = ["IMAGE_MEAN", "IMAGE_STD", "ImageSet", "load_digits", "load_fashion_mnist"]

#: Per-channel mean used to normalise every image set here.
IMAGE_MEAN = (0.5,)
#: Per-channel standard deviation used to normalise every image set here.
IMAGE_STD = (0.5,)


class ImageSet(NamedTuple):
    """A labelled image set.

    Attributes:
        images: (S, 1, H, W) float32 in [-1, 1].
        labels: (S,) int64 class indices.
        class_names: the name of each class, in label order.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]


def _subset(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int):
    seed = check_seed(seed)
    if limit is not None:
        limit = check_count(limit, "limit")
        if limit < len(labels):
            order = np.random.default_rng(seed).permutation(len(labels))[: int(limit)]
            images, labels = images[order], labels[order]
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return (x.unsqueeze(1) - 0.5) / 0.5, torch.from_numpy(labels.astype(np.int64))


def load_digits(
    split: str = "train", limit: int | None = None, seed: int = 0
) -> ImageSet:
    """scikit-learn's bundled 8 x 8 digits (1,797 images), a fixed 75/25 split.

    Args:
        split: ``"train"`` or ``"test"``.
        limit: keep at most this many images (a seeded random subset).
        seed: seed of the subset.

    Returns:
        An :class:`ImageSet` of (S, 1, 8, 8) images.
    """
    from sklearn.datasets import load_digits as _sk_digits

    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    data = _sk_digits()
    order = np.random.default_rng(20240601).permutation(len(data.target))
    cut = int(round(0.75 * len(order)))
    idx = order[:cut] if split == "train" else order[cut:]
    x, y = _subset(data.images[idx] / 16.0, data.target[idx], limit, seed)
    return ImageSet(x, y, tuple(str(d) for d in range(10)))


def load_fashion_mnist(
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    classes: tuple[int, ...] | None = None,
) -> ImageSet:
    """Fashion-MNIST (28 x 28) from the Debian package ``dataset-fashion-mnist``.

    Args:
        split: ``"train"`` or ``"test"``.
        limit: keep at most this many images (a seeded random subset).
        seed: seed of the subset.
        root: directory of the IDX files; default ``$DEEPSCOPE_FASHION_MNIST`` or
            ``/usr/share/datasets/fashion-mnist``.
        classes: keep only these labels, relabelled 0..len(classes)-1.

    Returns:
        An :class:`ImageSet` of (S, 1, 28, 28) images.

    Raises:
        FileNotFoundError: when the files are missing.
    """
    from deepscope.pointsets import FASHION_MNIST_CLASSES, fashion_mnist_images

    images, labels = fashion_mnist_images(split, root=root)
    labels = labels.astype(np.int64)
    names = FASHION_MNIST_CLASSES
    if classes is not None:
        keep = np.isin(labels, classes)
        images, labels = images[keep], labels[keep]
        remap = {c: i for i, c in enumerate(classes)}
        labels = np.array([remap[int(v)] for v in labels], dtype=np.int64)
        names = tuple(FASHION_MNIST_CLASSES[c] for c in classes)
    x, y = _subset(images / 255.0, labels, limit, seed)
    return ImageSet(x, y, tuple(names))
