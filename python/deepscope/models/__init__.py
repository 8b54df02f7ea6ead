# Point-cloud classifiers (PointNet, DGCNN) with the pre-bottleneck feature protocol.
# SPDX-License-Identifier: MIT
"""Point-cloud classifiers, their feature protocol, checkpoints and training.

* :class:`PointNet` and :class:`DGCNN` take ``(B, N, C)`` points and return
  logits; ``forward_features`` also returns the ``(B, F, N)`` per-point
  features that the head max-pools (see :mod:`deepscope.models.protocol`).
* :func:`capture_features` reads such features from any other network with a
  forward hook on a named module.
* :func:`save_checkpoint` / :func:`load_checkpoint` store a plain dict that
  loads with ``torch.load(..., weights_only=True)``; :func:`pretrained` loads
  the small checkpoints that ship with the package.
* :func:`train_classifier` / :func:`evaluate` train and test on labelled
  clouds such as :func:`deepscope.pointsets.fashion_mnist_points`.
"""

from __future__ import annotations

from deepscope.models._base import PointClassifier
from deepscope.models.checkpoint import (
    ARCHITECTURES,
    PRETRAINED,
    load_checkpoint,
    pretrained,
    save_checkpoint,
)
from deepscope.models.dgcnn import DGCNN, KNN_MODES, dense_knn
from deepscope.models.pointnet import PointNet
from deepscope.models.protocol import FeatureModel, capture_features
from deepscope.models.training import (
    augment_points,
    evaluate,
    predict,
    train_classifier,
)

__all__ = [
    "ARCHITECTURES",
    "DGCNN",
    "KNN_MODES",
    "PRETRAINED",
    "FeatureModel",
    "PointClassifier",
    "PointNet",
    "augment_points",
    "capture_features",
    "dense_knn",
    "evaluate",
    "load_checkpoint",
    "predict",
    "pretrained",
    "save_checkpoint",
    "train_classifier",
]
