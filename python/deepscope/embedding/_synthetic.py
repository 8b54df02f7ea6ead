# A seeded synthetic double-ellipsoid: two anisotropic, tilted, offset Gaussian shells.
# SPDX-License-Identifier: MIT
"""Synthetic raw embeddings with the double-ellipsoid shape of CLIP.

Each modality is a Gaussian with a long-tailed per-axis spectrum (an
ellipsoid), rotated by a random orthogonal matrix (tilt), whose mean lies
away from the origin; in high dimension its samples concentrate on a thin
shell around the mean. The two modality means differ by a gap confined to a
few coordinates, so the modalities are linearly separable in those.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed

__all__ = ["DoubleEllipsoid", "double_ellipsoid"]


class DoubleEllipsoid(NamedTuple):
    """Synthetic paired embedding clouds.

    Attributes:
        image: (N, D) float32 image-like embeddings.
        text: (M, D) float32 text-like embeddings.
        image_mean: (D,) float64 true mean of the image distribution.
        text_mean: (D,) float64 true mean of the text distribution.
        gap_dims: (G,) int64 coordinates that carry the modality gap.
    """

    image: np.ndarray
    text: np.ndarray
    image_mean: np.ndarray
    text_mean: np.ndarray
    gap_dims: np.ndarray


def double_ellipsoid(
    n_image: int = 1000,
    n_text: int | None = None,
    dim: int = 64,
    *,
    offset_ratio: float = 1.0,
    gap: float = 1.0,
    gap_dims: int = 2,
    decay: float = 0.5,
    seed: int = 0,
) -> DoubleEllipsoid:
    """Draws two seeded ellipsoidal shells offset from the origin.

    Args:
        n_image: image rows (>= 1).
        n_text: text rows (default ``n_image``).
        dim: dimension D (>= gap_dims + 1).
        offset_ratio: ``|m| / |sigma|`` of each modality (CLIP ViT-B/32:
            about 0.94 image, 1.03 text).
        gap: distance between the two means, in units of ``|sigma|``.
        gap_dims: number of coordinates carrying the gap (>= 1).
        decay: per-axis standard deviations fall as ``i**-decay``.
        seed: random seed.

    Returns:
        DoubleEllipsoid with float32 clouds.
    """
    n_text = n_image if n_text is None else n_text
    n_image, n_text = check_count(n_image, "n_image"), check_count(n_text, "n_text")
    if n_image < 1 or n_text < 1:
        raise ValueError(
            f"n_image, n_text: expected >= 1 rows each, got {n_image}, {n_text}"
        )
    if gap_dims < 1 or dim < gap_dims + 1:
        raise ValueError(
            f"dim: expected dim > gap_dims >= 1, got dim={dim}, gap_dims={gap_dims}"
        )
    rng = np.random.default_rng(check_seed(seed))

    # Shared long-tailed spectrum; each modality gets its own tilt.
    scales = np.arange(1, dim + 1, dtype=np.float64) ** (-float(decay))
    sigma_norm = float(np.linalg.norm(scales))

    # Common offset direction away from the gap coordinates.
    base = rng.normal(size=dim)
    base[:gap_dims] = 0.0
    base *= offset_ratio * sigma_norm / np.linalg.norm(base)
    shift = np.zeros(dim)
    shift[:gap_dims] = gap * sigma_norm / (2.0 * np.sqrt(gap_dims))
    image_mean, text_mean = base + shift, base - shift

    def draw(n: int, mean: np.ndarray) -> np.ndarray:
        rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        z = rng.normal(size=(n, dim)) * scales
        return (z @ rotation.T + mean).astype(np.float32)

    return DoubleEllipsoid(
        image=draw(n_image, image_mean),
        text=draw(n_text, text_mean),
        image_mean=image_mean,
        text_mean=text_mean,
        gap_dims=np.arange(gap_dims, dtype=np.int64),
    )
