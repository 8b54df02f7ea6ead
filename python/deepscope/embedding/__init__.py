# Embedding geometry: conformity and the double-ellipsoid shell of dual encoders.
# SPDX-License-Identifier: MIT
"""Geometry of raw dual-encoder (CLIP-like) embeddings.

After Levi & Gilboa, "The Double-Ellipsoid Geometry of CLIP", ICML 2025
(arXiv 2411.14517):

* :func:`conformity` - exact average cosine similarity to a reference set in
  O(N D) (unit-vector identity); :func:`exact_conformity` - the same from
  every pairwise cosine, by tiles (the oracle; CPU or CUDA).
* :func:`fit_conformity_estimate` - the mean-based estimate
  ``a * cos(m, v) + b`` with ``a, b`` fitted on a reference set.
* :class:`ShellGeometry` - per-modality mean, std, PCA spectrum, centred-norm
  distribution, ``|m| / |sigma|``, the modality gap and a separability probe;
  :func:`gap_shift_divergence` - conformity divergence along the gap.
* :func:`typicality_order`, :func:`conformity_outliers`,
  :func:`rerank_by_conformity`, :func:`hubness`, :class:`StreamingMoments`.
* :func:`double_ellipsoid` - a seeded synthetic double-ellipsoid;
  :func:`load_embeddings` (.npy / .npz / .pt); :func:`default_embeddings` - a
  small real (NOT CLIP) embedding pair shipped with the package.

The functions take raw features of any dual encoder (for example open_clip
``encode_image(x, normalize=False)``) as numpy, torch or cupy matrices.
"""

from __future__ import annotations

from deepscope.embedding._conformity import (
    ConformityEstimate,
    conformity,
    exact_conformity,
    fit_conformity_estimate,
    pearson,
)
from deepscope.embedding._geometry import (
    GapShift,
    ModalityShell,
    SeparabilityProbe,
    ShellGeometry,
    gap_shift_divergence,
    separability_probe,
)
from deepscope.embedding._io import EmbeddingPair, default_embeddings, load_embeddings
from deepscope.embedding._synthetic import DoubleEllipsoid, double_ellipsoid
from deepscope.embedding._uses import (
    StreamingMoments,
    conformity_outliers,
    hubness,
    rerank_by_conformity,
    typicality_order,
)

__all__ = [
    "ConformityEstimate",
    "DoubleEllipsoid",
    "EmbeddingPair",
    "GapShift",
    "ModalityShell",
    "SeparabilityProbe",
    "ShellGeometry",
    "StreamingMoments",
    "conformity",
    "conformity_outliers",
    "default_embeddings",
    "double_ellipsoid",
    "exact_conformity",
    "fit_conformity_estimate",
    "gap_shift_divergence",
    "hubness",
    "load_embeddings",
    "pearson",
    "rerank_by_conformity",
    "separability_probe",
    "typicality_order",
]
