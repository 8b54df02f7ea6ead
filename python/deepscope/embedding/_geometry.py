# Shell statistics, modality gap, separability probe and gap-shift analysis.
# SPDX-License-Identifier: MIT
"""The double-ellipsoid description of a dual encoder's raw embeddings.

Levi & Gilboa (ICML 2025, arXiv 2411.14517) describe each modality of CLIP
as a thin ellipsoidal shell offset from the origin. :class:`ShellGeometry`
measures that description on any raw (unnormalised) embeddings: per
modality the mean ``m``, per-dimension std ``sigma``, optionally the PCA
spectrum, the distribution of centred norms ``|v - m|``, the ratio
``|m| / |sigma|`` and the fitted conformity estimate; across modalities the
gap vector and a linear-separability probe with the fewest dimensions.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from deepscope._arrays import check_seed
from deepscope.embedding._conformity import (
    ConformityEstimate,
    _conformity64,
    _mean64,
    fit_conformity_estimate,
)
from deepscope.embedding._tensors import (
    as_matrix,
    check_nonzero_rows,
    row_norms,
    scaled_norms,
)

__all__ = [
    "GapShift",
    "ModalityShell",
    "SeparabilityProbe",
    "ShellGeometry",
    "gap_shift_divergence",
    "separability_probe",
]

_FORMAT = "deepscope.ShellGeometry/1"


@dataclasses.dataclass(frozen=True)
class ModalityShell:
    """Shell statistics of one modality (all float64).

    Attributes:
        n: number of rows.
        mean: (D,) mean ``m``.
        std: (D,) per-dimension standard deviation ``sigma`` (population).
        norm_mean: mean of the centred norms ``|v - m|``.
        norm_std: standard deviation of the centred norms.
        norm_cv: ``norm_std / norm_mean`` (small = thin shell).
        mean_to_std_ratio: ``|m| / |sigma|`` (offset from the origin).
        spectrum: (k,) covariance eigenvalues, descending, or None.
        centred_norms: (n,) the centred norms (kept for histograms).
        estimate: the fitted conformity estimate ``a cos(m, v) + b``, or None
            when it is undefined (fewer than 2 rows or a zero mean).
    """

    n: int
    mean: np.ndarray
    std: np.ndarray
    norm_mean: float
    norm_std: float
    norm_cv: float
    mean_to_std_ratio: float
    spectrum: np.ndarray | None
    centred_norms: np.ndarray
    estimate: ConformityEstimate | None


class SeparabilityProbe(NamedTuple):
    """Linear separability of two modalities with the fewest coordinates.

    Attributes:
        dims: (k,) int64 coordinates used, most discriminative first.
        accuracy: held-out accuracy of the linear classifier on ``dims``.
        accuracies: (k,) held-out accuracy with the first 1..k coordinates.
        reached: whether ``accuracy >= target``.
        target: the accuracy that was asked for.
    """

    dims: np.ndarray
    accuracy: float
    accuracies: np.ndarray
    reached: bool
    target: float


class GapShift(NamedTuple):
    """Divergence between image and text conformity while shifting text.

    Text rows are moved to ``t + alpha * (m_image - m_text)`` (``alpha = 0``:
    the actual position, ``alpha = 1``: the text mean on the image mean).

    Attributes:
        alphas: (A,) float64 shifts.
        divergence: (A,) float64 KL(image || text) of the conformity
            histograms (float64, smoothed so it is always finite).
        argmin_alpha: shift with the smallest divergence.
        argmax_alpha: shift with the largest divergence.
        at_zero: divergence at ``alpha = 0`` (interpolated if 0 is not in
            ``alphas``).
        minimal_at_zero: whether the smallest divergence is at ``alpha = 0``
            (the paper's claim).
    """

    alphas: np.ndarray
    divergence: np.ndarray
    argmin_alpha: float
    argmax_alpha: float
    at_zero: float
    minimal_at_zero: bool


def _shell(x: torch.Tensor, spectrum: bool) -> ModalityShell:
    n = int(x.shape[0])
    mean = _mean64(x)
    centred_sq = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    norms = torch.empty(n, dtype=torch.float64, device=x.device)
    cov = torch.zeros((x.shape[1],) * 2, dtype=torch.float64) if spectrum else None
    # Second moments are taken of the centred rows divided by a power of two
    # near their largest magnitude (exact), so squares cannot under/overflow.
    top = float(x.abs().amax()) if n else 0.0
    scale = math.ldexp(1.0, math.frexp(top)[1]) if top > 0.0 else 1.0
    for i0 in range(0, n, 16384):
        c = (x[i0 : i0 + 16384].to(torch.float64) - mean) / scale
        centred_sq += (c * c).sum(0)
        norms[i0 : i0 + 16384] = row_norms(c) * scale
        if cov is not None:
            cov += (c.T @ c).cpu()
    std = torch.sqrt(centred_sq / n) * scale
    norms_np = norms.cpu().numpy()
    # Moments of the norms relative to the largest, so squares cannot
    # under/overflow for very small or very large embeddings.
    top = float(norms_np.max()) if n else 0.0
    rel = norms_np / top if top > 0.0 else norms_np
    norm_mean = float(rel.mean()) * (top if top > 0.0 else 1.0)
    norm_std = float(rel.std()) * (top if top > 0.0 else 1.0)
    sigma_norm = float(scaled_norms(std))
    mean_norm = float(scaled_norms(mean))
    estimate = None
    if n >= 2 and mean_norm > 0.0:
        estimate = fit_conformity_estimate(x)
    return ModalityShell(
        n=n,
        mean=mean.cpu().numpy(),
        std=std.cpu().numpy(),
        norm_mean=norm_mean,
        norm_std=norm_std,
        norm_cv=norm_std / norm_mean if norm_mean > 0.0 else 0.0,
        mean_to_std_ratio=mean_norm / sigma_norm if sigma_norm > 0.0 else float("inf"),
        spectrum=None
        if cov is None
        else np.linalg.eigvalsh(cov.numpy() / n)[::-1].clip(min=0.0) * scale**2,
        centred_norms=norms_np,
        estimate=estimate,
    )


def separability_probe(
    image_emb: Any,
    text_emb: Any,
    *,
    target: float = 1.0,
    max_dims: int = 16,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> SeparabilityProbe:
    """Fewest coordinates that separate two modalities linearly.

    Coordinates are ranked by their Fisher score ``(m1 - m2)^2 / (s1^2 +
    s2^2)``; for k = 1, 2, ... a least-squares linear classifier (with bias)
    on the top-k coordinates is fitted on a seeded training split and scored
    on the held-out rows, stopping at the first k that reaches ``target``.

    Args:
        image_emb: (N, D) float array.
        text_emb: (M, D) float array, same D.
        target: held-out accuracy to reach, in (0, 1].
        max_dims: largest k tried (>= 1; capped at D).
        test_fraction: share of each modality held out, in (0, 1).
        seed: split seed.

    Returns:
        SeparabilityProbe.
    """
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target: expected 0 < target <= 1, got {target}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected in (0, 1), got {test_fraction}")
    if max_dims < 1:
        raise ValueError(f"max_dims: expected >= 1, got {max_dims}")
    a = as_matrix(image_emb, "image_emb")[0].cpu().to(torch.float64).numpy()
    b = as_matrix(text_emb, "text_emb")[0].cpu().to(torch.float64).numpy()
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"text_emb: expected D = {a.shape[1]} like image_emb, got {b.shape[1]}"
        )
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(
            f"image_emb, text_emb: expected >= 2 rows each, got {a.shape[0]}, "
            f"{b.shape[0]}"
        )

    # The probe is invariant to a common scale: divide both sets by a power of
    # two near their largest magnitude (exact) so variances cannot
    # under/overflow. New arrays; the caller's are not touched.
    top = max(float(np.abs(a).max()), float(np.abs(b).max()))
    if top > 0.0:
        scale = math.ldexp(1.0, math.frexp(top)[1])
        a, b = a / scale, b / scale

    # Fisher ranking of coordinates (ties: lowest index first).
    spread = a.var(0) + b.var(0)
    score = (a.mean(0) - b.mean(0)) ** 2 / np.where(spread > 0, spread, np.inf)
    score[(spread == 0) & (a.mean(0) != b.mean(0))] = np.inf
    order = np.argsort(-score, kind="stable")

    # Seeded stratified split.
    rng = np.random.default_rng(check_seed(seed))
    x = np.concatenate([a, b])
    y = np.concatenate([np.ones(len(a)), -np.ones(len(b))])
    test = np.zeros(len(x), bool)
    for lo, hi in ((0, len(a)), (len(a), len(x))):
        n_test = min(max(1, round(test_fraction * (hi - lo))), hi - lo - 1)
        test[lo + rng.permutation(hi - lo)[:n_test]] = True

    accuracies = []
    k_max = min(int(max_dims), x.shape[1])
    for k in range(1, k_max + 1):
        cols = order[:k]
        design = np.concatenate([x[:, cols], np.ones((len(x), 1))], 1)
        scale = np.abs(design[~test]).max(0)
        scale[scale == 0] = 1.0
        w, *_ = np.linalg.lstsq(design[~test] / scale, y[~test], rcond=None)
        pred = np.where(design[test] / scale @ w >= 0.0, 1.0, -1.0)
        accuracies.append(float((pred == y[test]).mean()))
        if accuracies[-1] >= target:
            break
    best = (
        len(accuracies) if accuracies[-1] >= target else int(np.argmax(accuracies)) + 1
    )
    return SeparabilityProbe(
        dims=order[:best].astype(np.int64),
        accuracy=accuracies[best - 1],
        accuracies=np.asarray(accuracies),
        reached=accuracies[best - 1] >= target,
        target=float(target),
    )


def _kl_histograms(p_values: np.ndarray, q_values: np.ndarray, bins: int) -> float:
    lo = min(p_values.min(), q_values.min())
    hi = max(p_values.max(), q_values.max())
    if hi <= lo:
        return 0.0
    p, edges = np.histogram(p_values, bins=bins, range=(lo, hi))
    q, _ = np.histogram(q_values, bins=edges)
    # Additive smoothing (half a count per bin) keeps the divergence finite.
    p = (p + 0.5) / (p.sum() + 0.5 * bins)
    q = (q + 0.5) / (q.sum() + 0.5 * bins)
    return float(np.sum(p * np.log(p / q)))


def gap_shift_divergence(
    image_emb: Any,
    text_emb: Any,
    alphas: Any = None,
    *,
    bins: int = 50,
) -> GapShift:
    """Divergence of the conformity distributions as text moves along the gap.

    For each ``alpha`` the text rows become ``t + alpha * (m_image - m_text)``
    (raw means); each modality's leave-one-out conformity is taken within its
    own set (exact, O(N D)), and the divergence is KL(image || text) between
    their histograms on common bins. The paper (Levi & Gilboa, ICML 2025)
    reports the smallest divergence at ``alpha = 0``; ``minimal_at_zero``
    tells whether these embeddings agree.

    Args:
        image_emb: (N, D) float array, N >= 2.
        text_emb: (M, D) float array, M >= 2.
        alphas: (A,) shifts (default ``linspace(-1, 1, 21)``).
        bins: histogram bins (>= 2).

    Returns:
        GapShift.
    """
    if bins < 2:
        raise ValueError(f"bins: expected >= 2, got {bins}")
    a, _ = as_matrix(image_emb, "image_emb")
    t, _ = as_matrix(text_emb, "text_emb")
    if a.shape[1] != t.shape[1]:
        raise ValueError(
            f"text_emb: expected D = {a.shape[1]} like image_emb, got {t.shape[1]}"
        )
    if a.shape[0] < 2 or t.shape[0] < 2:
        raise ValueError(
            f"image_emb, text_emb: expected >= 2 rows each, got {a.shape[0]}, "
            f"{t.shape[0]}"
        )
    alphas = (
        np.linspace(-1.0, 1.0, 21)
        if alphas is None
        else np.asarray(alphas, dtype=np.float64).ravel()
    )
    if alphas.size == 0 or not np.isfinite(alphas).all():
        raise ValueError("alphas: expected at least one finite value")
    a_norms = row_norms(a)
    check_nonzero_rows(a_norms, "image_emb")
    image_c = _conformity64(a, a_norms, a, a_norms, True).cpu().numpy()
    t64 = t.to(torch.float64)
    gap = _mean64(a) - _mean64(t)

    divergence = np.empty(alphas.size)
    for i, alpha in enumerate(alphas):
        shifted = t64 + float(alpha) * gap
        norms = row_norms(shifted)
        if bool((norms == 0).any()):
            # A text row sits on the origin at this shift: cosine undefined.
            raise ValueError(
                f"alphas: at alpha = {alpha} a shifted text row is the zero "
                "vector (cosine undefined); choose other shifts"
            )
        text_c = _conformity64(shifted, norms, shifted, norms, True).cpu().numpy()
        divergence[i] = _kl_histograms(image_c, text_c, bins)

    order = np.argsort(alphas, kind="stable")
    at_zero = float(np.interp(0.0, alphas[order], divergence[order]))
    i_min = int(np.argmin(divergence))
    return GapShift(
        alphas=alphas,
        divergence=divergence,
        argmin_alpha=float(alphas[i_min]),
        argmax_alpha=float(alphas[int(np.argmax(divergence))]),
        at_zero=at_zero,
        minimal_at_zero=bool(alphas[i_min] == 0.0),
    )


@dataclasses.dataclass(frozen=True)
class ShellGeometry:
    """Double-ellipsoid statistics of raw image and text embeddings.

    Attributes:
        image: shell of the image embeddings.
        text: shell of the text embeddings, or None when fitted on one set.
        gap: (D,) ``m_image - m_text`` of the raw means, or None.
        unit_gap: (D,) difference of the means of the unit rows (the gap
            vector of Liang et al., NeurIPS 2022), or None.
        separability: linear-separability probe, or None.
    """

    image: ModalityShell
    text: ModalityShell | None = None
    gap: np.ndarray | None = None
    unit_gap: np.ndarray | None = None
    separability: SeparabilityProbe | None = None

    @classmethod
    def fit(
        cls,
        image_emb: Any,
        text_emb: Any | None = None,
        *,
        spectrum: bool = False,
        probe: bool = True,
        seed: int = 0,
    ) -> ShellGeometry:
        """Measures the shells of RAW (unnormalised) embeddings.

        Args:
            image_emb: (N, D) float16 / bfloat16 / float32 / float64 array,
                N >= 1, rows non-zero; numpy, torch or cupy.
            text_emb: (M, D) array in the same space, or None.
            spectrum: also compute the (D, D) covariance and its eigenvalues
                (O(N D^2) flops, D^2 memory).
            probe: run :func:`separability_probe` (needs both sets, >= 2
                rows each).
            seed: seed of the probe's split.

        Returns:
            ShellGeometry.
        """
        a, _ = as_matrix(image_emb, "image_emb")
        check_nonzero_rows(row_norms(a), "image_emb")
        image = _shell(a, spectrum)
        if text_emb is None:
            return cls(image=image)
        t, _ = as_matrix(text_emb, "text_emb")
        if t.shape[1] != a.shape[1]:
            raise ValueError(
                f"text_emb: expected D = {a.shape[1]} like image_emb, got {t.shape[1]}"
            )
        t_norms = row_norms(t)
        check_nonzero_rows(t_norms, "text_emb")
        text = _shell(t, spectrum)
        unit_gap = _unit_mean(a) - _unit_mean(t)
        sep = None
        if probe and a.shape[0] >= 2 and t.shape[0] >= 2:
            sep = separability_probe(a, t, seed=seed)
        return cls(
            image=image,
            text=text,
            gap=image.mean - text.mean,
            unit_gap=unit_gap,
            separability=sep,
        )

    def save(self, path: str | Path) -> None:
        """Writes the fitted statistics to a ``.npz`` file (no pickles)."""
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"format": _FORMAT}
        for name in ("image", "text"):
            shell = getattr(self, name)
            if shell is None:
                continue
            scalars = {}
            for field in dataclasses.fields(ModalityShell):
                value = getattr(shell, field.name)
                if field.name == "estimate":
                    if value is not None:
                        arrays[f"{name}.estimate.mean"] = value.mean
                        scalars["estimate"] = {
                            k: getattr(value, k)
                            for k in (
                                "a",
                                "b",
                                "pearson_r",
                                "max_abs_error",
                                "n_reference",
                                "leave_one_out",
                            )
                        }
                elif isinstance(value, np.ndarray):
                    arrays[f"{name}.{field.name}"] = value
                elif value is not None:
                    scalars[field.name] = value
            meta[name] = scalars
        for name in ("gap", "unit_gap"):
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        if self.separability is not None:
            arrays["separability.dims"] = self.separability.dims
            arrays["separability.accuracies"] = self.separability.accuracies
            meta["separability"] = {
                "accuracy": self.separability.accuracy,
                "reached": self.separability.reached,
                "target": self.separability.target,
            }
        arrays["meta"] = np.asarray(json.dumps(meta))
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ShellGeometry:
        """Reads a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != _FORMAT:
            raise ValueError(
                f"path: expected a {_FORMAT} file, got format {meta.get('format')!r}"
            )
        shells: dict[str, ModalityShell | None] = {"image": None, "text": None}
        for name in shells:
            if name not in meta:
                continue
            scalars = dict(meta[name])
            est = scalars.pop("estimate", None)
            estimate = None
            if est is not None:
                estimate = ConformityEstimate(
                    mean=arrays[f"{name}.estimate.mean"], **est
                )
            shells[name] = ModalityShell(
                mean=arrays[f"{name}.mean"],
                std=arrays[f"{name}.std"],
                spectrum=arrays.get(f"{name}.spectrum"),
                centred_norms=arrays[f"{name}.centred_norms"],
                estimate=estimate,
                **scalars,
            )
        sep = None
        if "separability" in meta:
            sep = SeparabilityProbe(
                dims=arrays["separability.dims"],
                accuracies=arrays["separability.accuracies"],
                **meta["separability"],
            )
        return cls(
            image=shells["image"],
            text=shells["text"],
            gap=arrays.get("gap"),
            unit_gap=arrays.get("unit_gap"),
            separability=sep,
        )


def _unit_mean(t: torch.Tensor) -> np.ndarray:
    norms = row_norms(t)
    total = torch.zeros(t.shape[1], dtype=torch.float64, device=t.device)
    for i0 in range(0, t.shape[0], 16384):
        total += (
            t[i0 : i0 + 16384].to(torch.float64) / norms[i0 : i0 + 16384, None]
        ).sum(0)
    return (total / t.shape[0]).cpu().numpy()
