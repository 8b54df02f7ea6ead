# ModelNet-C robustness scores: CE, RCE, mCE, RmCE and mOA with the official rounding.
# SPDX-License-Identifier: MIT
"""ModelNet-C scores (Ren, Pan and Liu, ICML 2022).

The official evaluation (``ModelNet-C:modelnetc_utils/eval.py``, identical in
EPiC, Critical Points++ and PointCloud-C) rounds at every step: the clean
accuracy and each corruption's mean accuracy over the five levels are rounded
to 3 decimals, then each CE / RCE, then the three means. :func:`mce`
reproduces that by default (with Python's ``round``, as the reference) and
offers ``rounded=False`` for exact arithmetic.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from deepscope.robust._corrupt import CORRUPTIONS, LEVELS

__all__ = ["DGCNN_ACCURACY", "MCEResult", "mce"]

#: Published accuracies of the reference DGCNN on ModelNet-C (the default
#: normaliser): clean and the mean over the five levels of each corruption.
DGCNN_ACCURACY: dict[str, float] = {
    "clean": 0.926,
    "scale": 0.906,
    "jitter": 0.684,
    "rotate": 0.785,
    "dropout_global": 0.752,
    "dropout_local": 0.793,
    "add_global": 0.705,
    "add_local": 0.725,
}


class MCEResult(NamedTuple):
    """ModelNet-C scores of one model.

    Attributes:
        clean: clean overall accuracy (OA).
        oa: corruption -> OA averaged over its levels.
        ce: corruption -> corruption error ``(1 - OA_c) / (1 - OA_c^ref)``.
        rce: corruption -> relative error ``(OA_clean - OA_c) / (OA_clean^ref
            - OA_c^ref)``.
        mce: mean CE over the corruptions.
        rmce: mean RCE.
        moa: mean OA over the corruptions (clean excluded).
    """

    clean: float
    oa: dict[str, float]
    ce: dict[str, float]
    rce: dict[str, float]
    mce: float
    rmce: float
    moa: float


def _accuracy(value: object, label: str) -> float:
    """One accuracy as a float: a real number (Python or NumPy), not bool/str."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{label}: expected an accuracy (a real number in [0, 1]), got "
            f"{type(value).__name__} ({value!r})"
        )
    return float(value)


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    """The corruptions to score: a non-empty sequence of distinct names."""
    if isinstance(kinds, str):
        raise ValueError(
            f"kinds: expected a sequence of corruption names, got the string {kinds!r}"
        )
    names = list(kinds)
    if not names:
        raise ValueError("kinds: expected at least one corruption, got none")
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:
        raise ValueError(
            f"kinds: expected distinct corruptions, got {repeated} more than once"
        )
    return names


def _per_corruption(
    accuracies: Mapping[str, object], name: str, kinds: Sequence[str]
) -> tuple[float, dict[str, list[float]]]:
    """Reads clean and per-level (or per-corruption) accuracies."""
    if "clean" not in accuracies:
        raise ValueError(f"{name}: expected a 'clean' accuracy")
    clean = _accuracy(accuracies["clean"], f"{name}['clean']")
    levels: dict[str, list[float]] = {}
    for kind in kinds:
        if kind in accuracies:
            value = accuracies[kind]
            label = f"{name}[{kind!r}]"
            if isinstance(value, (str, bytes)) or not isinstance(
                value, (numbers.Real, Sequence, np.ndarray)
            ):
                raise ValueError(
                    f"{label}: expected a level mean or a list of level "
                    f"accuracies, got {type(value).__name__} ({value!r})"
                )
            if isinstance(value, numbers.Real):
                levels[kind] = [_accuracy(value, label)]
            else:
                levels[kind] = [_accuracy(v, label) for v in np.ravel(value).tolist()]
                if not levels[kind]:
                    raise ValueError(f"{name}[{kind!r}]: expected accuracies, got none")
        else:
            keys = [f"{kind}_{level}" for level in LEVELS]
            missing = [key for key in keys if key not in accuracies]
            if missing:
                raise ValueError(
                    f"{name}: expected {kind!r} (a level mean or a list) or the keys "
                    f"{', '.join(keys)}; missing {', '.join(missing)}"
                )
            levels[kind] = [
                _accuracy(accuracies[key], f"{name}[{key!r}]") for key in keys
            ]
    for kind, values in levels.items():
        for value in values:
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"{name}[{kind!r}]: expected accuracies in [0, 1], got {value}"
                )
    if not 0.0 <= clean <= 1.0:
        raise ValueError(
            f"{name}['clean']: expected an accuracy in [0, 1], got {clean}"
        )
    return clean, levels


def mce(
    accuracies: Mapping[str, object],
    reference: Mapping[str, object] | None = None,
    *,
    rounded: bool = True,
    kinds: Sequence[str] = CORRUPTIONS,
) -> MCEResult:
    """CE, RCE, mCE, RmCE and mOA of a model on ModelNet-C.

    Args:
        accuracies: the model's overall accuracies (fractions in [0, 1]):
            ``"clean"`` and, per corruption, either the five level keys
            ``"{kind}_{level}"`` (as the official file names), a list of level
            accuracies under ``kind``, or their mean under ``kind``.
        reference: the normalising model's accuracies in the same forms
            (default :data:`DGCNN_ACCURACY`, the published DGCNN). Pass your own
            plain model's accuracies to normalise by it.
        rounded: reproduce the official intermediate rounding to 3 decimals
            (default); False computes everything exactly.
        kinds: corruptions to score (default all seven).

    Returns:
        :class:`MCEResult`.

    Raises:
        ValueError: a missing, non-numeric or out-of-range accuracy; empty or
            repeated ``kinds``.

    A CE whose reference error is zero, or an RCE whose reference loses no
    accuracy under the corruption, is NaN (undefined), and so are the means
    that include it.
    """
    r = (lambda x: round(x, 3)) if rounded else (lambda x: x)
    kinds = _check_kinds(kinds)
    clean, levels = _per_corruption(accuracies, "accuracies", kinds)
    ref_clean, ref_levels = _per_corruption(
        DGCNN_ACCURACY if reference is None else reference, "reference", kinds
    )
    clean, ref_clean = r(clean), r(ref_clean)
    oa, ce, rce = {}, {}, {}
    for kind in kinds:
        oa[kind] = r(sum(levels[kind]) / len(levels[kind]))
        ref_oa = r(sum(ref_levels[kind]) / len(ref_levels[kind]))
        ce[kind] = r((1 - oa[kind]) / (1 - ref_oa)) if ref_oa != 1.0 else math.nan
        drop = ref_clean - ref_oa
        rce[kind] = r((clean - oa[kind]) / drop) if drop != 0 else math.nan
    n = len(kinds)
    return MCEResult(
        clean=clean,
        oa=oa,
        ce=ce,
        rce=rce,
        mce=r(sum(ce.values()) / n),
        rmce=r(sum(rce.values()) / n),
        moa=r(sum(oa.values()) / n),
    )
