# Checkpoints as plain dicts (loadable with weights_only=True) and the shipped weights.
# SPDX-License-Identifier: MIT
"""Saving and loading deepscope classifiers.

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)``
reads without executing code::

    {"format": "deepscope.classifier", "version": 1,
     "architecture": "pointnet" | "dgcnn",
     "config": {constructor arguments},
     "state_dict": {name: tensor},
     "meta": {class names, data set, accuracy, ...}}
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepscope.models._base import PointClassifier
from deepscope.models.dgcnn import DGCNN
from deepscope.models.pointnet import PointNet

__all__ = [
    "ARCHITECTURES",
    "PRETRAINED",
    "load_checkpoint",
    "pretrained",
    "save_checkpoint",
]

FORMAT = "deepscope.classifier"
VERSION = 1
#: Architecture name -> class.
ARCHITECTURES: dict[str, type[PointClassifier]] = {"pointnet": PointNet, "dgcnn": DGCNN}
#: Shipped checkpoints: name -> file in ``deepscope/models/weights``
#: (``tools/train_pretrained.py`` reproduces the PointNet,
#: ``tools/robust_fmnist.py`` the DGCNN).
PRETRAINED = {
    "pointnet-fmnist": "pointnet_fmnist.pt",
    "dgcnn-fmnist": "dgcnn_fmnist.pt",
}


def save_checkpoint(
    model: PointClassifier,
    path: str | os.PathLike[str],
    *,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Writes a model's config, weights and metadata as a plain dict.

    Args:
        model: a :class:`PointNet` or :class:`DGCNN`.
        path: output file (``.pt``); parent folders are created.
        meta: JSON-like metadata (str, int, float, bool, None, lists, tuples and
            dicts of them; NumPy scalars and arrays are converted), e.g.
            ``{"class_names": [...], "dataset": "fashion-mnist",
            "test_accuracy": 0.87}``.

    Returns:
        The path written.
    """
    if getattr(model, "architecture", None) not in ARCHITECTURES:
        raise ValueError(
            f"model: expected one of {sorted(ARCHITECTURES)}, got "
            f"{type(model).__name__}"
        )
    state = {
        name: tensor.detach().cpu().clone()
        for name, tensor in model.state_dict().items()
    }
    checkpoint = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture,
        "config": dict(model.config),
        "state_dict": state,
        "meta": _plain(meta or {}, "meta"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    **options: Any,
) -> PointClassifier:
    """Rebuilds a model from :func:`save_checkpoint`'s file (``weights_only=True``).

    Args:
        path: the checkpoint file.
        map_location: device of the returned model.
        **options: constructor options that are not part of the saved weights,
            e.g. ``knn="torch"`` for a DGCNN.

    Returns:
        The model in eval mode; its ``meta`` attribute holds the saved metadata.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: not a deepscope classifier checkpoint")
    if checkpoint.get("version") != VERSION:
        raise ValueError(
            f"{path}: checkpoint version {checkpoint.get('version')}, this "
            f"deepscope reads version {VERSION}"
        )
    architecture = checkpoint["architecture"]
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown architecture {architecture!r}")
    config = dict(checkpoint["config"])
    num_classes = config.pop("num_classes")
    model = ARCHITECTURES[architecture](num_classes, **config, **options)
    model.load_state_dict(checkpoint["state_dict"])
    model.to(map_location).eval()
    model.meta = dict(checkpoint["meta"])
    return model


def pretrained(name: str, **options: Any) -> PointClassifier:
    """Loads a checkpoint that ships inside the package.

    Args:
        name: one of :data:`PRETRAINED`, trained on Fashion-MNIST point clouds
            (:func:`deepscope.pointsets.fashion_mnist_points`):
            ``"pointnet-fmnist"`` (PointNet, ``emb_dims=256``, 256-point
            clouds) or ``"dgcnn-fmnist"`` (a CPU-sized plain DGCNN: k = 20,
            EdgeConv widths 32-32-64-128, ``emb_dims=256``, 1024-point clouds;
            the normaliser of the robustness scores). The data set, training
            recipe and test accuracy are in ``model.meta``; weights ship as
            float16 and load as float32.
        **options: passed to :func:`load_checkpoint` (``map_location``, ``knn``).

    Returns:
        The model in eval mode.
    """
    if name not in PRETRAINED:
        raise ValueError(f"name: expected one of {sorted(PRETRAINED)}, got {name!r}")
    weights = resources.files("deepscope.models").joinpath("weights", PRETRAINED[name])
    if not weights.is_file():
        raise FileNotFoundError(
            f"pretrained weights {PRETRAINED[name]} are not installed"
        )
    with resources.as_file(weights) as path:
        return load_checkpoint(path, **options)


def _plain(value: Any, where: str) -> Any:
    """Converts metadata to types that ``weights_only=True`` loading accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict):
        return {
            str(key): _plain(item, f"{where}[{key!r}]") for key, item in value.items()
        }
    raise ValueError(f"{where}: expected JSON-like values, got {type(value).__name__}")
