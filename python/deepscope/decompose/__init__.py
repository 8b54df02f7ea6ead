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
from deepscope.decompose._default import (
    DEFAULT_CHECKPOINT,
    Bundle,
    load_bundle,
    save_bundle,
    train_bundle,
)
from deepscope.decompose._dxai import DXAI, DXAIConfig
from deepscope.decompose._explanation import Explanation, plot_explanation, unnormalize
from deepscope.decompose._scoring import (
    DELETION_BETAS,
    GLOBAL_BETAS,
    CurveResult,
    attribution_methods,
    deletion_curve,
    distinct_from_attribution,
    format_auc_table,
    global_beta_curve,
    normalized_auc,
    score_methods,
)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "DELETION_BETAS",
    "DXAI",
    "GLOBAL_BETAS",
    "Bundle",
    "CurveResult",
    "attribution_methods",
    "deletion_curve",
    "distinct_from_attribution",
    "format_auc_table",
    "global_beta_curve",
    "load_bundle",
    "normalized_auc",
    "save_bundle",
    "score_methods",
    "train_bundle",
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
