# The feature protocol: logits plus the per-point features right before the global pool.
# SPDX-License-Identifier: MIT
"""How deepscope reads pre-bottleneck features out of a point-cloud classifier.

Point-importance methods (Critical Points / CP++, FBI) need the per-point
features that a network max-pools into its global descriptor: for PointNet the
output of its last shared MLP layer, for DGCNN the output of ``conv5``. The
protocol:

* ``model(points)`` takes ``(B, N, C)`` float points (channels last, like the
  rest of deepscope) and returns ``(B, num_classes)`` logits;
* ``model.forward_features(points)`` returns ``(logits, features)`` with
  ``features`` of shape ``(B, F, N)``: column ``n`` belongs to input point
  ``n``, and the global max-pool of the head is ``features.max(-1)``.

deepscope's :class:`~deepscope.models.PointNet` and
:class:`~deepscope.models.DGCNN` implement it. For any other network,
:func:`capture_features` reads the features with a forward hook on a named
module (for example ``"conv5"`` in the usual DGCNN code).
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["FeatureModel", "capture_features"]


@runtime_checkable
class FeatureModel(Protocol):
    """A classifier that exposes its pre-bottleneck per-point features."""

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, C) points -> (B, num_classes) logits."""
        ...

    def forward_features(
        self, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, C) points -> ((B, num_classes) logits, (B, F, N) features)."""
        ...


def capture_features(
    model: nn.Module,
    points: Any,
    module: str,
    *,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Runs one forward pass and captures the output of a named submodule.

    The model runs under ``torch.no_grad()`` in whatever mode it is in: a
    model in training mode is run as it is (batch statistics, dropout) and a
    warning says so; call ``model.eval()`` first for inference features.

    Args:
        model: any ``nn.Module``; it is called as ``model(points)``.
        points: the model's input, passed unchanged (a NumPy array is turned
            into a tensor on the model's device first). Use the model's own
            layout, e.g. ``(B, 3, N)`` for the usual DGCNN code.
        module: the submodule's name as in ``model.named_modules()``.
        channels_last: the submodule outputs ``(B, N, F)`` (e.g. ``nn.Linear``
            layers applied per point) instead of ``(B, F, N)``.

    Returns:
        ``(logits, features)``: the model's output (its first element when it
        returns a tuple, as the CP++ / EPiC code does) and the captured
        ``(B, F, N)`` features (a trailing singleton axis, as from a
        ``Conv2d`` with ``(B, F, N, 1)`` output, is dropped), both detached.

    Raises:
        ValueError: no submodule of that name, the submodule never ran, or its
            output is not a 3-D tensor.
    """
    modules = dict(model.named_modules())
    if module not in modules:
        names = [name for name in modules if name][:20]
        raise ValueError(f"module: no submodule named {module!r}; some names: {names}")
    if model.training:
        warnings.warn(
            "capture_features: the model is in training mode (batch statistics, "
            "dropout); call model.eval() for inference features",
            stacklevel=2,
        )
    if not isinstance(points, torch.Tensor):
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        points = torch.as_tensor(points, device=device)

    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        captured.append(output)

    handle = modules[module].register_forward_hook(hook)
    try:
        with torch.no_grad():
            output = model(points)
    finally:
        handle.remove()

    if not captured:
        raise ValueError(f"module: {module!r} did not run in the forward pass")
    features = captured[-1]
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"module: {module!r} returned {type(features).__name__}")
    if features.ndim == 4 and features.shape[-1] == 1:
        features = features.squeeze(-1)
    if features.ndim != 3:
        raise ValueError(
            f"module: expected a (B, F, N) output from {module!r}, got shape "
            f"{tuple(features.shape)}"
        )
    if channels_last:
        features = features.transpose(1, 2)
    logits = output[0] if isinstance(output, (tuple, list)) else output
    return logits.detach(), features.detach()
