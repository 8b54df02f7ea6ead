# The Explanation result of a decomposition and its plotting helpers.
# SPDX-License-Identifier: MIT
"""``Explanation``: input = distinct + agnostic, with the K generator branches."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["Explanation", "plot_explanation", "unnormalize"]


class Explanation(NamedTuple):
    """A batched decomposition.

    Attributes:
        input: (B, C, H, W) float32 images that were explained (normalised).
        distinct: (B, C, H, W) float32 class-distinct part (branch 0).
        agnostic: (B, C, H, W) float32 class-agnostic part (branches 1..K-1, plus
            ``residual`` when it was absorbed).
        branches: (B, K, C, H, W) float32 raw generator branches.
        target: (B,) int64 explained class.
        residual: (B, C, H, W) float32 ``input - branches.sum(1)``.
    """

    input: torch.Tensor
    distinct: torch.Tensor
    agnostic: torch.Tensor
    branches: torch.Tensor
    target: torch.Tensor
    residual: torch.Tensor

    def max_sum_error(self) -> float:
        """max |input - (distinct + agnostic)| (0 up to rounding when absorbed)."""
        return float((self.input - self.distinct - self.agnostic).abs().max())


def unnormalize(
    x: torch.Tensor | np.ndarray, mean: Sequence[float], std: Sequence[float]
) -> np.ndarray:
    """Maps a normalised (C, H, W) image back to display space, (H, W, C) in [0, 1].

    ``p = x * std + mean`` per channel, then clipped to [0, 1].
    """
    a = torch.as_tensor(x).detach().float().cpu().numpy()
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return np.clip(a * s + m, 0.0, 1.0).transpose(1, 2, 0)


def _signed_display(part: np.ndarray, std: Sequence[float]) -> np.ndarray:
    # A signed part is a difference of images: scale by std (no mean shift) and
    # show the channel mean.
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (part * s).mean(0)


def plot_explanation(
    explanation: Explanation,
    indices: Sequence[int] | None = None,
    mean: Sequence[float] = (0.5,),
    std: Sequence[float] = (0.5,),
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike | None = None,
):
    """Panel: input | distinct | agnostic | each branch, one row per image.

    The input and agnostic part are un-normalised (``x * std + mean``) and shown as
    images (grey for one channel); the distinct part and the branches are signed
    and shown with one symmetric diverging colour scale per row (red > 0, blue < 0),
    so the branches of an image are comparable.

    Args:
        explanation: the decomposition.
        indices: which images of the batch (default: all, at most 8).
        mean: per-channel normalisation mean of the inputs.
        std: per-channel normalisation std of the inputs.
        class_names: names for the row titles.
        path: when given, the figure is saved there (PNG) and closed.

    Returns:
        The matplotlib Figure (None when ``path`` is given).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    b, k = explanation.branches.shape[:2]
    rows = list(indices) if indices is not None else list(range(min(b, 8)))
    if not rows or any(not 0 <= i < b for i in rows):
        raise ValueError(f"indices: expected values in [0, {b}), got {rows}")
    cols = 3 + k
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(2.1 * cols, 2.1 * len(rows)), squeeze=False
    )
    for r, i in enumerate(rows):
        tgt = int(explanation.target[i])
        name = class_names[tgt] if class_names else str(tgt)
        img = unnormalize(explanation.input[i], mean, std)
        agn = unnormalize(explanation.agnostic[i], mean, std)
        gray = img.shape[2] == 1
        axes[r, 0].imshow(img[..., 0] if gray else img, cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"input ({name})", fontsize=10)
        # One symmetric colour scale per row for the distinct part and every
        # branch, so their magnitudes can be compared at a glance.
        signed = [_signed_display(explanation.distinct[i].cpu().numpy(), std)]
        signed += [
            _signed_display(explanation.branches[i, j].cpu().numpy(), std)
            for j in range(k)
        ]
        lim = max(float(np.abs(v).max()) for v in signed) or 1.0
        titles = ["distinct"] + [
            f"branch {j}" + (" (distinct)" if j == 0 else "") for j in range(k)
        ]
        cells = [1] + [3 + j for j in range(k)]
        for v, c, title in zip(signed, cells, titles, strict=True):
            im = axes[r, c].imshow(v, cmap="seismic", vmin=-lim, vmax=lim)
            axes[r, c].set_title(title, fontsize=10)
        axes[r, 2].imshow(agn[..., 0] if gray else agn, cmap="gray", vmin=0, vmax=1)
        axes[r, 2].set_title("agnostic", fontsize=10)
        fig.colorbar(im, ax=axes[r, cols - 1], fraction=0.046, pad=0.02)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return None
    return fig
