# deepscope.decompose: DXAI image decomposition and scoring against heatmap methods.
# SPDX-License-Identifier: MIT
"""Decomposition-based explanations (DXAI).

``DXAI`` learns, for a frozen classifier, a K-branch generator whose branch 0 is
the class-distinct part of an image and whose other branches sum to the
class-agnostic part. ``scoring`` puts DXAI and Captum heatmaps on the same
global-beta and deletion curves (normalised AUC; lower is better).
"""

from __future__ import annotations

from deepscope.decompose._classifier import SmallCNN, accuracy, train_classifier
from deepscope.decompose._data import (
    IMAGE_MEAN,
    IMAGE_STD,
    ImageSet,
    load_digits,
    load_fashion_mnist,
)
from deepscope.decompose._dxai import DXAI, DXAIConfig
from deepscope.decompose._explanation import Explanation, plot_explanation, unnormalize

__all__ = [
    "DXAI",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "DXAIConfig",
    "Explanation",
    "ImageSet",
    "SmallCNN",
    "accuracy",
    "load_digits",
    "load_fashion_mnist",
    "plot_explanation",
    "train_classifier",
    "unnormalize",
]
