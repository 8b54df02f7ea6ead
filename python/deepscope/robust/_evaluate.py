# Robustness evaluation: accuracy on every ModelNet-C style split, then mCE.
# SPDX-License-Identifier: MIT
"""Accuracy of classifiers on a corrupted test set and their ModelNet-C scores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from deepscope.robust._corrupt import CORRUPTIONS
from deepscope.robust._metrics import MCEResult, mce

__all__ = ["RobustnessReport", "evaluate_robustness", "format_report"]


class RobustnessReport(NamedTuple):
    """Accuracies and scores of several models on one corrupted set.

    Attributes:
        accuracy: model -> split (``"clean"``, ``"{kind}_{level}"``) -> OA.
        scores: model -> :class:`MCEResult`.
        reference: the normaliser's name (a model name or ``"DGCNN
            (published)"``).
        seconds: model -> evaluation time in seconds over all splits.
    """

    accuracy: dict[str, dict[str, float]]
    scores: dict[str, MCEResult]
    reference: str
    seconds: dict[str, float]


def evaluate_robustness(
    models: Mapping[str, Any],
    dataset: Mapping[str, Any],
    labels: Any,
    *,
    reference: str | None = None,
    batch_size: int = 64,
    rounded: bool = True,
    progress: Callable[[str, str], None] | None = None,
) -> RobustnessReport:
    """Evaluates classifiers on every split and scores them.

    Args:
        models: name -> torch module mapping (B, N, 3) to logits (evaluated
            in eval mode, without gradients).
        dataset: split name -> (S, M, 3) clouds, as :func:`corrupt_dataset`
            returns (or the points of :func:`load_modelnet_c`).
        labels: (S,) integer labels, shared by all splits.
        reference: the model normalising CE/RCE (one of ``models``); None for
            the published DGCNN accuracies.
        batch_size: clouds per forward pass.
        rounded: the official intermediate rounding.
        progress: called as ``progress(model, split)`` before each split.

    Returns:
        :class:`RobustnessReport`.
    """
    import time

    from deepscope.models import evaluate

    if reference is not None and reference not in models:
        raise ValueError(
            f"reference: expected one of {sorted(models)}, got {reference!r}"
        )
    labels = np.asarray(labels)
    accuracy: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name, model in models.items():
        start = time.perf_counter()
        accuracy[name] = {}
        for split, points in dataset.items():
            if progress is not None:
                progress(name, split)
            accuracy[name][split] = evaluate(
                model, points, labels, batch_size=batch_size
            )
        seconds[name] = time.perf_counter() - start
    kinds = [k for k in CORRUPTIONS if any(s.startswith(k + "_") for s in dataset)]
    scores = {
        name: mce(
            acc,
            None if reference is None else accuracy[reference],
            rounded=rounded,
            kinds=kinds,
        )
        for name, acc in accuracy.items()
    }
    return RobustnessReport(
        accuracy,
        scores,
        "DGCNN (published)" if reference is None else reference,
        seconds,
    )


_SHORT = {
    "scale": "Scale",
    "jitter": "Jitter",
    "rotate": "Rotate",
    "dropout_global": "Drop-G",
    "dropout_local": "Drop-L",
    "add_global": "Add-G",
    "add_local": "Add-L",
}


def format_report(report: RobustnessReport, *, markdown: bool = False) -> str:
    """The table: clean OA, per-corruption error (1 - OA) and CE, mCE, RmCE."""
    kinds = list(next(iter(report.scores.values())).ce)
    header = ["Model", "Clean OA"] + [_SHORT[k] for k in kinds] + ["mCE", "RmCE", "mOA"]
    rows = []
    for name, s in report.scores.items():
        cells = [name, f"{s.clean:.3f}"]
        cells += [f"{1 - s.oa[k]:.3f} ({s.ce[k]:.3f})" for k in kinds]
        cells += [f"{s.mce:.3f}", f"{s.rmce:.3f}", f"{s.moa:.3f}"]
        rows.append(cells)
    note = (
        f"Per-corruption cells: error 1 - OA (CE); CE/RCE normalised by "
        f"{report.reference}."
    )
    undefined = [
        v
        for s in report.scores.values()
        for v in (*s.ce.values(), *s.rce.values(), s.mce, s.rmce)
        if v != v
    ]
    if undefined:
        note += (
            " nan: undefined, where the normaliser has no error under a "
            "corruption (CE) or loses no accuracy to it (RCE), and in the "
            "means that include it."
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n\n" + note
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
        for r in [header, *rows]
    ]
    return "\n".join(lines) + "\n" + note


def _ensemble_accuracies(
    plain: Any,
    epic: Any,
    critical: Any,
    dataset: Mapping[str, Any],
    labels: Any,
    *,
    references: Mapping[str, Any] | None = None,
    batch_size: int = 50,
    progress: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Accuracies of plain, +EPiC, +EPiC+critical and critical alone.

    Every member's logits are computed once per split and combined (mean of
    raw logits), instead of re-running the shared members per ensemble.
    ``epic`` and ``critical`` may be None (their rows are then left out).
    ``references`` (name -> plain classifier, e.g. the DGCNN that normalises
    CE) are evaluated on the same splits and come first in the result.
    """
    import torch

    labels = torch.as_tensor(np.asarray(labels))
    references = dict(references or {})
    if "plain" in references:
        raise ValueError("references: the name 'plain' is taken by the plain model")
    names = [*references, "plain"]
    if epic is not None:
        names.append("+EPiC")
        if critical is not None:
            names.append("+EPiC+critical")
    if critical is not None:
        names.append("critical alone")
    modules = [
        m for m in (*references.values(), plain, epic, critical) if m is not None
    ]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    accuracy: dict[str, dict[str, float]] = {name: {} for name in names}
    try:
        for split, points in dataset.items():
            if progress is not None:
                progress("all", split)
            x = torch.as_tensor(np.asarray(points))
            parts: dict[str, list] = {"p": [], "e": [], "c": []}
            parts.update({name: [] for name in references})
            with torch.no_grad():
                for i in range(0, len(x), batch_size):
                    chunk = x[i : i + batch_size]
                    for name, model in references.items():
                        parts[name].append(model(chunk))
                    parts["p"].append(plain(chunk))
                    if epic is not None:
                        parts["e"].append(epic.member_logits(chunk))
                    if critical is not None:
                        parts["c"].append(critical.member_logits(chunk))
            logits = {name: torch.cat(parts[name]) for name in references}
            logits["plain"] = torch.cat(parts["p"])
            if epic is not None:
                e = torch.cat(parts["e"], dim=1)
                logits["+EPiC"] = e.mean(0)
            if critical is not None:
                c = torch.cat(parts["c"], dim=1)
                logits["critical alone"] = c.mean(0)
                if epic is not None:
                    logits["+EPiC+critical"] = torch.cat([e, c]).mean(0)
            for name in names:
                hits = logits[name].argmax(1).cpu() == labels
                accuracy[name][split] = float(hits.float().mean())
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
    return accuracy
