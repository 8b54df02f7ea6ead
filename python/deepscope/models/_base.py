# Shared parts of deepscope's point-cloud classifiers: input checks, config, forward.
# SPDX-License-Identifier: MIT
"""The base class of :class:`PointNet` and :class:`DGCNN`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PointClassifier"]


class PointClassifier(nn.Module):
    """A point-cloud classifier that follows the feature protocol.

    Subclasses define ``architecture`` (the checkpoint name), build ``head``
    (an ``nn.Sequential`` from the pooled vector to the logits) and implement
    ``encode`` ((B, C, N) -> (B, F, N) pre-bottleneck features) and ``pool``
    ((B, F, N) -> pooled vector). ``config`` holds the constructor arguments,
    so that ``type(model)(**model.config)`` rebuilds the network.
    """

    architecture: str = ""
    head: nn.Sequential

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = dict(config)

    @property
    def num_classes(self) -> int:
        return int(self.config["num_classes"])

    @property
    def in_channels(self) -> int:
        return int(self.config["in_channels"])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Classifies point clouds.

        Args:
            points: (B, N, C) float points, C = ``in_channels``.

        Returns:
            (B, num_classes) logits.
        """
        return self.forward_features(points)[0]

    def forward_features(
        self, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Classifies point clouds and returns the pre-bottleneck features.

        Args:
            points: (B, N, C) float points, C = ``in_channels``.

        Returns:
            ``(logits, features)``: (B, num_classes) logits and (B, F, N)
            per-point features right before the global pooling (F =
            ``emb_dims``); the head's max-pooled vector is ``features.max(-1)``.
        """
        x = self._channels_first(points)
        features = self.encode(x)
        logits = self.head(self.pool(features))
        return logits, features

    def _channels_first(self, points: torch.Tensor) -> torch.Tensor:
        """Checks (B, N, C) points; returns them as (B, C, N) in the weights' dtype."""
        if not isinstance(points, torch.Tensor):
            raise TypeError(
                f"points: expected a torch.Tensor, got {type(points).__name__}"
            )
        if points.ndim != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(
                f"points: expected shape (B, N, {self.in_channels}), got "
                f"{tuple(points.shape)}"
            )
        if not points.is_floating_point():
            raise ValueError(f"points: expected a float dtype, got {points.dtype}")
        if points.shape[0] == 0 or points.shape[1] == 0:
            raise ValueError(
                f"points: expected at least one cloud of at least one point, got "
                f"{tuple(points.shape)}"
            )
        dtype = next(self.parameters()).dtype
        return points.to(dtype).transpose(1, 2)

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.config.items())
