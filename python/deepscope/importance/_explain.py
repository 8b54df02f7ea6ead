# Per-point explanations of point-cloud classifiers: FBI, post-bottleneck, gradients.
# SPDX-License-Identifier: MIT
"""Per-point importance of a classifier's prediction, by several measures.

The front end :func:`explain` runs a classifier on a batch of clouds and
returns, per point, how much it matters to the prediction, plus the predicted
class and an entropy score. The measures:

* ``"fbi"``: FBI (Levi and Gilboa, "Fast and Simple Explainability for Point
  Cloud Networks", arXiv 2403.07706), the ``p``-norm of each point's feature
  vector right BEFORE the max-pool bottleneck, ``||f[:, n]||_p``; one forward
  pass, no gradient.
* ``"fbi_post"``: the post-bottleneck variant studied in the same paper,
  defined here as the norm of the point's contribution AFTER the max-pool.
  With ``g[c] = max_n f[c, n]`` the pooled vector and ``w(c)`` the point that
  attains it (lowest index on ties), point ``n`` passes ``g[c]`` on for every
  channel it wins and nothing for the others, so its contribution is the
  vector ``u_n[c] = g[c] if w(c) == n else 0`` and its importance
  ``||u_n||_p``. It is zero outside the critical set (sparse), unlike ``fbi``.
* ``"critical"``: the Critical Points++ discrete importance (arXiv
  2308.05525), the number of channels the point wins, as float.
* ``"gradient"``: vanilla gradient saliency, the L2 norm over the
  coordinates of ``d logit[target] / d points[n]``; one forward and one
  backward pass.
* ``"integrated_gradients"``: Integrated Gradients (Sundararajan et al., ICML
  2017) through Captum, all-zero baseline (every point at the origin),
  ``n_steps`` Riemann steps; importance is the L2 norm over the coordinates of
  the per-coordinate attribution. Needs ``pip install captum``.
* ``"point_dropping"``: exact leave-one-out saliency (the quantity the
  point-dropping saliency maps of Zheng et al., ICCV 2019, approximate): the
  drop of the target logit when the point is removed from the cloud,
  ``logit(P)[t] - logit(P \\ {n})[t]``; N forward passes of N - 1 points per
  cloud (batched). Can be negative.

The entropy score is the normalized entropy (:func:`normalized_entropy`) of
the importance vector of each cloud (negative values clipped to 0 first). For
``"fbi"`` it measures how evenly the network spreads its attention; it is the
uncertainty / out-of-distribution score of Critical Points++ (there computed
on the ``"critical"`` counts).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

Array = Any

__all__ = ["MEASURES", "Explanation", "explain", "post_bottleneck_norms"]

#: The measures :func:`explain` knows.
MEASURES = (
    "fbi",
    "fbi_post",
    "critical",
    "gradient",
    "integrated_gradients",
    "point_dropping",
)


class Explanation(NamedTuple):
    """Per-point importance of a batch of predictions (see :func:`explain`).

    Attributes:
        importance: (B, N) per-point importance (larger = more important to
            the prediction); float32, float64 for a float64 model.
        predicted: (B,) int64 predicted class (arg-max logit).
        entropy: (B,) normalized entropy of ``importance`` in [0, 1], same
            float dtype.
        logits: (B, num_classes) logits of the unmodified clouds, same dtype.
    """

    importance: Array
    predicted: Array
    entropy: Array
    logits: Array


def explain(
    model: Any,
    points: Array,
    *,
    measure: str = "fbi",
    p: float = 2,
    target: Array | None = None,
    module: str | None = None,
    batch_size: int = 64,
    n_steps: int = 32,
    internal_batch_size: int | None = None,
) -> Explanation:
    """Explains a classifier's predictions by per-point importance.

    Args:
        model: a torch classifier taking (B, N, 3) points: one that follows
            :class:`deepscope.models.FeatureModel` (``forward_features``, like
            :class:`~deepscope.models.PointNet` and
            :class:`~deepscope.models.DGCNN`), or any ``nn.Module`` together
            with ``module`` (the submodule whose (B, F, N) output is
            max-pooled, read by :func:`deepscope.models.capture_features`).
            A model in training mode is switched to eval mode for the call and
            restored afterwards, with a warning. Frozen parameters are fine.
        points: (B, N, 3) or (N, 3) float points, NumPy or torch.
        measure: one of :data:`MEASURES` (see the module docstring).
        p: norm order of ``"fbi"`` / ``"fbi_post"``: 1, 2 or ``inf``.
        target: (B,) class to explain for the gradient-based measures and
            ``"point_dropping"`` (default: the predicted class).
        module: submodule name for models without ``forward_features``.
        batch_size: clouds per forward pass (for ``"point_dropping"``: the
            leave-one-out copies of one cloud per forward pass).
        n_steps: Riemann steps of ``"integrated_gradients"``.
        internal_batch_size: Captum's interpolants per forward pass (default:
            ``batch_size``; at least the number of clouds).

    Returns:
        :class:`Explanation` in the framework of ``points`` (NumPy or torch
        on the model's device); unbatched fields for an unbatched input.

    Raises:
        ValueError: unknown ``measure``, bad ``points`` / ``target`` / ``p``.
        ImportError: ``"integrated_gradients"`` without Captum.
    """
    import torch

    from deepscope.importance._measures import normalized_entropy

    if measure not in MEASURES:
        raise ValueError(f"measure: expected one of {MEASURES}, got {measure!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    if int(n_steps) < 1:
        raise ValueError(f"n_steps: expected >= 1, got {n_steps}")
    device, dtype = _model_device(model)
    x, framework, batched = _as_points(points, device, dtype)
    was_training = bool(model.training)
    if was_training:
        warnings.warn(
            "explain: the model is in training mode; it is run in eval mode for "
            "the explanation and put back in training mode afterwards",
            stacklevel=2,
        )
        model.eval()
    try:
        logits, features = _forward(model, x, module, batch_size)
        predicted = logits.argmax(dim=1)
        tgt = _as_target(target, predicted, logits.shape[1])
        if measure == "fbi":
            from deepscope.importance._measures import feature_norms

            importance = feature_norms(features, p=p)
        elif measure == "fbi_post":
            importance = post_bottleneck_norms(features, p=p)
        elif measure == "critical":
            from deepscope.importance._measures import critical_counts

            importance = critical_counts(features).to(x.dtype)
        elif measure == "gradient":
            importance = _gradient(model, x, tgt, batch_size)
        elif measure == "integrated_gradients":
            importance = _integrated_gradients(
                model, x, tgt, n_steps, internal_batch_size or batch_size
            )
        else:
            importance = _point_dropping(model, x, logits, tgt, batch_size)
    finally:
        if was_training:
            model.train()
    out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    importance = importance.detach().to(out_dtype)
    entropy = normalized_entropy(importance.clamp(min=0.0))
    result = Explanation(
        importance, predicted.to(torch.int64), entropy, logits.to(out_dtype)
    )
    return _finish(result, framework, batched)


def post_bottleneck_norms(features: Any, *, p: float = 2) -> Any:
    """Norm of every point's contribution after the max-pool (``fbi_post``).

    With ``g[c] = max_n f[c, n]`` and ``w(c)`` its arg-max (lowest index on
    ties), ``importance[n] = ||(g[c] if w(c) == n else 0)_c||_p``: a point
    passes on the pooled values of the channels it wins, nothing else.

    Args:
        features: (B, C, N) torch tensor of pre-bottleneck features.
        p: 1, 2 or ``inf``.

    Returns:
        (B, N) float32 (float64 for float64 features) tensor.
    """
    import torch

    from deepscope.importance._measures import _parse_p

    code = _parse_p(p)
    f = features.to(torch.float64)
    g, winner = f.max(dim=2)  # torch returns the first maximal index
    out = torch.zeros(f.shape[0], f.shape[2], dtype=torch.float64, device=f.device)
    if code == 0:
        out.scatter_reduce_(1, winner, g.abs(), reduce="amax", include_self=True)
    else:
        out.scatter_add_(1, winner, g.abs() ** code)
        out = out ** (1.0 / code)
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    return out.to(dtype)


# ---------------------------------------------------------------- helpers


def _model_device(model: Any) -> tuple[Any, Any]:
    """The device and float dtype of the model's first parameter."""
    import torch

    first = next(iter(model.parameters()), None)
    if first is None or not first.is_floating_point():
        return torch.device("cpu"), torch.float32
    return first.device, first.dtype


def _as_points(points: Any, device: Any, dtype: Any) -> tuple[Any, str, bool]:
    """(B, N, 3) tensor on ``device`` in ``dtype``, input framework, batched."""
    import torch

    framework = "torch" if isinstance(points, torch.Tensor) else "numpy"
    if framework == "numpy":
        array = np.asarray(points)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"points: expected a float dtype, got {array.dtype}")
        x = torch.from_numpy(np.array(array, dtype=np.float64))
    else:
        if not points.is_floating_point():
            raise ValueError(f"points: expected a float dtype, got {points.dtype}")
        x = points.detach()
    if x.ndim not in (2, 3) or x.shape[-1] != 3:
        raise ValueError(
            f"points: expected shape (B, N, 3) or (N, 3), got {tuple(x.shape)}"
        )
    batched = x.ndim == 3
    x = x if batched else x[None]
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"points: expected at least one cloud of at least one point, got "
            f"{tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("points: expected finite values, found NaN or inf")
    return x.to(device=device, dtype=dtype), framework, batched


def _as_target(target: Any, predicted: Any, num_classes: int) -> Any:
    import torch

    if target is None:
        return predicted
    t = torch.as_tensor(np.asarray(target) if not torch.is_tensor(target) else target)
    t = t.reshape(-1).to(torch.int64).to(predicted.device)
    if t.numel() == 1 and predicted.numel() != 1:
        t = t.expand(predicted.numel())
    if t.shape != predicted.shape:
        raise ValueError(
            f"target: expected {predicted.numel()} classes (one per cloud), got "
            f"{t.numel()}"
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(
            f"target: expected classes in [0, {num_classes - 1}], got "
            f"[{int(t.min())}, {int(t.max())}]"
        )
    return t


def _forward(model: Any, x: Any, module: str | None, batch_size: int):
    """(logits, features) of ``x``, batch by batch, without gradients."""
    import torch

    logits, features = [], []
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start : start + batch_size]
        if module is not None:
            from deepscope.models import capture_features

            out, feat = capture_features(model, chunk, module)
        elif hasattr(model, "forward_features"):
            with torch.no_grad():
                out, feat = model.forward_features(chunk)
        else:
            raise ValueError(
                "module: the model has no forward_features; name the submodule "
                "whose (B, F, N) output is max-pooled"
            )
        if feat.ndim != 3 or feat.shape[2] != x.shape[1]:
            raise ValueError(
                f"model: expected (B, F, {x.shape[1]}) features, got "
                f"{tuple(feat.shape)}"
            )
        logits.append(out.detach())
        features.append(feat.detach())
    return torch.cat(logits), torch.cat(features)


def _gradient(model: Any, x: Any, target: Any, batch_size: int) -> Any:
    import torch

    out = []
    for start in range(0, x.shape[0], batch_size):
        chunk = x[start : start + batch_size].clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(chunk)
            picked = logits.gather(1, target[start : start + batch_size, None])
            (grad,) = torch.autograd.grad(picked.sum(), chunk)
        out.append(grad.norm(dim=-1))
    return torch.cat(out)


def _integrated_gradients(
    model: Any, x: Any, target: Any, n_steps: int, internal_batch_size: int
) -> Any:
    import torch

    try:
        from captum.attr import IntegratedGradients
    except ImportError as error:
        raise ImportError(
            "measure='integrated_gradients' needs Captum: pip install captum"
        ) from error
    method = IntegratedGradients(model)
    with torch.enable_grad():
        attribution = method.attribute(
            x.clone(),
            baselines=torch.zeros_like(x),
            target=target,
            n_steps=int(n_steps),
            # Captum needs at least one interpolant of every cloud per pass.
            internal_batch_size=max(int(internal_batch_size), x.shape[0]),
        )
    return attribution.detach().norm(dim=-1)


def _point_dropping(
    model: Any, x: Any, logits: Any, target: Any, batch_size: int
) -> Any:
    """Leave-one-out: target logit minus the logit without each point."""
    import torch

    B, N, _ = x.shape
    if N < 2:
        return torch.zeros(B, N, dtype=logits.dtype, device=x.device)
    # keep[n] = every index but n, (N, N - 1).
    grid = torch.arange(N, device=x.device)
    keep = grid.repeat(N, 1)[~torch.eye(N, dtype=torch.bool, device=x.device)]
    keep = keep.view(N, N - 1)
    chunk = max(1, int(batch_size))
    out = torch.empty(B, N, dtype=logits.dtype, device=x.device)
    with torch.no_grad():
        for b in range(B):
            t = int(target[b])
            for start in range(0, N, chunk):
                rows = keep[start : start + chunk]
                dropped = model(x[b][rows]).to(logits.dtype)[:, t]
                out[b, start : start + rows.shape[0]] = logits[b, t] - dropped
    return out


def _finish(result: Explanation, framework: str, batched: bool) -> Explanation:
    fields = []
    for value in result:
        value = value if batched else value[0]
        if framework == "numpy":
            value = value.detach().cpu().numpy()
        fields.append(value)
    return Explanation(*fields)
