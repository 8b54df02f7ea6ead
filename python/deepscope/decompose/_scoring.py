# Scoring adapters: Captum heatmaps and DXAI on the global-beta and deletion curves.
# SPDX-License-Identifier: MIT
"""Faithfulness curves shared by heatmap methods and DXAI.

Every method yields a *distinct part* d(x) of the same shape as x:
DXAI's branch 0, or for a heatmap method ``attr / max|attr| * x`` (per image).
Two curves are computed on it, with true labels as targets:

* global-beta: accuracy of ``C(x - beta * d)`` for beta in {0, 0.1, ..., 1};
  AUC (trapezoid) divided by the accuracy at beta = 0 and by max beta.
* deletion: the top-beta fraction of pixels by importance (|attr| summed over
  channels; |d| for DXAI) set to ``fill`` (0 = the dataset mean for [-1, 1]
  data), beta in {0, 0.05, ..., 0.2}; AUC divided by the accuracy at beta = 0
  (not by max beta, so its range is [0, 0.2]).

Lower AUC is better for both curves: accuracy falls faster when the removed part
is what the classifier relies on.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from deepscope._arrays import check_count, check_seed

__all__ = [
    "DELETION_BETAS",
    "GLOBAL_BETAS",
    "CurveResult",
    "attribution_methods",
    "deletion_curve",
    "distinct_from_attribution",
    "format_auc_table",
    "global_beta_curve",
    "normalized_auc",
    "score_methods",
]

#: Betas of the global-beta curve.
GLOBAL_BETAS = tuple(round(0.1 * i, 2) for i in range(11))
#: Fractions of deleted pixels of the deletion curve.
DELETION_BETAS = tuple(round(0.05 * i, 2) for i in range(5))

#: A method maps (model, x (B,C,H,W), target (B,)) to a (B,C,H,W) attribution or
#: distinct part.
Method = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class CurveResult(NamedTuple):
    """One method's curve.

    Attributes:
        betas: (T,) float64 abscissae.
        accuracy: (T,) float64 accuracy at each beta.
        auc: normalised AUC (lower is better); NaN when accuracy at beta = 0 is 0.
    """

    betas: np.ndarray
    accuracy: np.ndarray
    auc: float


def normalized_auc(
    betas: Sequence[float], accuracy: Sequence[float], by_max_beta: bool
) -> float:
    """Trapezoid AUC of accuracy(beta), / accuracy[0] (and / max beta if asked)."""
    b = np.asarray(betas, np.float64)
    a = np.asarray(accuracy, np.float64)
    if a[0] <= 0:
        return float("nan")
    auc = float(np.sum((b[1:] - b[:-1]) * (a[1:] + a[:-1]) / 2)) / a[0]
    return auc / b.max() if by_max_beta and b.max() > 0 else auc


def distinct_from_attribution(attr: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``attr / max|attr| * x`` per image; all-zero attributions give zeros (no NaN)."""
    scale = (
        attr.detach().abs().flatten(1).amax(1).clamp_min(torch.finfo(attr.dtype).tiny)
    )
    return attr.detach() / scale.view(-1, 1, 1, 1) * x


def _warn_if_training(model: nn.Module) -> None:
    if model.training:
        warnings.warn(
            "model is in train mode; scores use it as is (call model.eval())",
            UserWarning,
            stacklevel=3,
        )


@torch.no_grad()
def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def global_beta_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    distinct: torch.Tensor,
    betas: Sequence[float] = GLOBAL_BETAS,
) -> CurveResult:
    """Accuracy of ``model(x - beta * distinct)``; AUC / (acc(0) * max beta).

    Args:
        model: classifier.
        x: (B, C, H, W) inputs.
        y: (B,) true labels.
        distinct: (B, C, H, W) distinct part (see
            :func:`distinct_from_attribution` for heatmaps).
        betas: increasing, starting at 0.
    """
    _warn_if_training(model)
    if distinct.shape != x.shape:
        raise ValueError(
            f"distinct: expected shape {tuple(x.shape)}, got {tuple(distinct.shape)}"
        )
    acc = np.array([_acc(model, x - b * distinct, y) for b in betas])
    return CurveResult(
        np.asarray(betas, np.float64), acc, normalized_auc(betas, acc, True)
    )


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    importance: torch.Tensor,
    betas: Sequence[float] = DELETION_BETAS,
    fill: float = 0.0,
) -> CurveResult:
    """Accuracy after setting the top-beta fraction of pixels to ``fill``.

    Pixels are ranked by ``|importance|`` summed over channels; ties go to the
    lowest pixel index (a stable sort), so constant maps delete in raster order.

    Args:
        model: classifier.
        x: (B, C, H, W) inputs.
        y: (B,) true labels.
        importance: (B, C, H, W) or (B, H, W) attribution.
        betas: fractions in [0, 1], increasing, starting at 0.
        fill: value written into deleted pixels (all channels).
    """
    _warn_if_training(model)
    b, c, h, w = x.shape
    imp = importance.detach().abs()
    if imp.ndim == 4:
        imp = imp.sum(1)
    if imp.shape != (b, h, w):
        raise ValueError(
            f"importance: expected (B, C, H, W) or (B, H, W) matching x, got "
            f"{tuple(importance.shape)}"
        )
    imp = torch.nan_to_num(imp.flatten(1).float(), nan=0.0)
    order = torch.sort(imp, dim=1, descending=True, stable=True).indices
    acc = []
    for beta in betas:
        k = int(round(beta * h * w))
        mask = torch.zeros(b, h * w, dtype=torch.bool)
        mask.scatter_(1, order[:, :k], True)
        mask = mask.view(b, 1, h, w)
        acc.append(_acc(model, torch.where(mask, torch.full_like(x, fill), x), y))
    acc = np.array(acc)
    return CurveResult(
        np.asarray(betas, np.float64), acc, normalized_auc(betas, acc, False)
    )


def attribution_methods(
    gradcam_layer: nn.Module | None = None,
    ig_steps: int = 32,
    shap_samples: int = 25,
    seed: int = 0,
) -> dict[str, Method]:
    """Captum baselines as ``method(model, x, target) -> (B, C, H, W)`` maps.

    Saliency (|grad|), IntegratedGradients (zero baseline, ``ig_steps``),
    GradientShap (zero baseline, ``shap_samples`` samples, seeded), LayerGradCam on
    ``gradcam_layer`` (bilinearly upsampled to the input and repeated over
    channels; skipped when None), and ``random`` (seeded uniform noise).
    """
    seed = check_seed(seed)
    ig_steps = check_count(ig_steps, "ig_steps")
    shap_samples = check_count(shap_samples, "shap_samples")
    from captum.attr import (
        GradientShap,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Saliency,
    )

    def saliency(model, x, t):
        return Saliency(model).attribute(x, target=t, abs=True)

    def integrated_gradients(model, x, t):
        return IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=t, n_steps=ig_steps
        )

    def gradient_shap(model, x, t):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return GradientShap(model).attribute(
                x, baselines=torch.zeros_like(x), target=t, n_samples=shap_samples
            )

    def rand(model, x, t):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(x.shape, generator=g)

    methods: dict[str, Method] = {
        "random": rand,
        "Saliency": saliency,
        "IntegratedGradients": integrated_gradients,
        "GradientShap": gradient_shap,
    }
    if gradcam_layer is not None:

        def grad_cam(model, x, t):
            a = LayerGradCam(model, gradcam_layer).attribute(x, target=t)
            a = LayerAttribution.interpolate(a, tuple(x.shape[2:]), "bilinear")
            return a.expand(-1, x.shape[1], -1, -1)

        methods["LayerGradCam"] = grad_cam
    return methods


def score_methods(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    methods: dict[str, Method] | None = None,
    dxai=None,
    batch_size: int = 64,
) -> dict[str, dict[str, CurveResult]]:
    """Scores heatmap methods and (optionally) a trained DXAI on both curves.

    Args:
        model: the classifier (used as is; warned about if in train mode).
        x: (S, C, H, W) test images.
        y: (S,) true labels (also the attribution targets).
        methods: name -> method; default :func:`attribution_methods` with the
            model's ``gradcam_layer`` when it has one.
        dxai: a trained :class:`~deepscope.decompose.DXAI` scored as ``"DXAI"``.
        batch_size: images per attribution call.

    Returns:
        ``{method: {"global_beta": CurveResult, "deletion": CurveResult}}``.
    """
    _warn_if_training(model)
    if methods is None:
        methods = attribution_methods(getattr(model, "gradcam_layer", None))
    out: dict[str, dict[str, CurveResult]] = {}
    entries: list[tuple[str, Method | None]] = list(methods.items())
    if dxai is not None:
        entries.append(("DXAI", None))
    for name, method in entries:
        distinct, importance = [], []
        for i in range(0, len(y), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            if method is None:
                d = dxai.explain(xb, yb).distinct
                distinct.append(d)
                importance.append(d.abs())
            else:
                a = method(model, xb.clone().requires_grad_(False), yb).detach()
                a = torch.nan_to_num(a.float())
                distinct.append(distinct_from_attribution(a, xb))
                importance.append(a.abs())
        d = torch.cat(distinct)
        out[name] = {
            "global_beta": global_beta_curve(model, x, y, d),
            "deletion": deletion_curve(model, x, y, torch.cat(importance)),
        }
    return out


def format_auc_table(scores: dict[str, dict[str, CurveResult]]) -> str:
    """A Markdown table of normalised AUCs (lower is better)."""
    lines = [
        "| method | global-beta AUC (lower is better) "
        "| deletion AUC (lower is better) |",
        "|---|---|---|",
    ]
    for name, curves in scores.items():
        lines.append(
            f"| {name} | {curves['global_beta'].auc:.3f} "
            f"| {curves['deletion'].auc:.3f} |"
        )
    return "\n".join(lines)
