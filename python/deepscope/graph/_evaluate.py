# Seeded accuracy evaluation of graph SSL methods at few labels per class.
# SPDX-License-Identifier: MIT
"""Accuracy on unlabelled points at 1 / 3 / 5 / 10 labels per class."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, NamedTuple

import numpy as np

from deepscope._arrays import check_count, check_seed
from deepscope.graph._knn_graph import knn_graph
from deepscope.graph._spectral import spectral_clustering
from deepscope.graph._ssl import (
    LaplaceLearning,
    LaplacianSSL,
    PoissonLearning,
    name_clusters,
)

__all__ = ["METHODS", "SSLEvaluation", "draw_labels", "evaluate_ssl"]

logger = logging.getLogger(__name__)

METHODS = ("lssl", "laplace", "poisson", "spectral", "label_spreading")
METHOD_NAMES = {
    "lssl": "L_SSL spectral",
    "laplace": "Laplace learning",
    "poisson": "Poisson learning",
    "spectral": "spectral clustering (unsupervised)",
    "label_spreading": "sklearn LabelSpreading",
}


class SSLEvaluation(NamedTuple):
    """Accuracies of each method at each label rate.

    Attributes:
        accuracy: ``{method: {labels_per_class: (n_seeds,) float64}}``.
        seconds: ``{method: total fit seconds over all runs}``.
        n_points: number of points.
        config: the graph settings used.
    """

    accuracy: dict[str, dict[int, np.ndarray]]
    seconds: dict[str, float]
    n_points: int
    config: dict[str, Any]


def draw_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Class-stratified random label draw: ``y`` where drawn, -1 elsewhere."""
    rng = np.random.default_rng(check_seed(seed))
    per_class = check_count(per_class, "per_class")
    out = np.full(len(y), -1, dtype=np.int64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        pick = rng.choice(members, min(per_class, members.size), replace=False)
        out[pick] = c
    return out


def evaluate_ssl(
    X: np.ndarray,
    y: np.ndarray,
    *,
    labels_per_class: tuple[int, ...] = (1, 3, 5, 10),
    n_seeds: int = 10,
    methods: tuple[str, ...] = METHODS,
    n_neighbors: int = 10,
    lssl_neighbors: int = 49,
    lssl_sigma_neighbor: int = 20,
) -> SSLEvaluation:
    """Mean accuracy on unlabelled points over seeded label draws.

    Graphs: Laplace / Poisson learning use the k = ``n_neighbors`` graph with
    GraphLearning's exp(-4 d^2 / d_k^2) weights; unsupervised spectral
    clustering the self-tuning graph at the same k (clusters named from each
    draw's labelled points); L_SSL the reference code's MNIST setting, k = 49
    neighbours (50 with self) and sigma at the 20th. LabelSpreading is
    scikit-learn's with its kNN kernel at the same k.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods: unknown {sorted(unknown)}; expected {METHODS}")
    n = len(y)
    C = np.unique(y).size
    accuracy: dict[str, dict[int, np.ndarray]] = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)

    t = time.perf_counter()
    W_base = knn_graph(X, n_neighbors, weight="kth_neighbor").affinity
    graph_s = time.perf_counter() - t
    W_lssl = None
    if "lssl" in methods:
        t = time.perf_counter()
        k_l = min(lssl_neighbors, n - 1)
        W_lssl = knn_graph(
            X, k_l, sigma_neighbor=min(lssl_sigma_neighbor, k_l)
        ).affinity
        seconds["lssl"] += time.perf_counter() - t
    clusters = None
    if "spectral" in methods:
        t = time.perf_counter()
        W_sc = knn_graph(X, n_neighbors).affinity
        clusters = spectral_clustering(W_sc, C)
        seconds["spectral"] += time.perf_counter() - t

    for per in labels_per_class:
        for m in methods:
            accuracy[m][per] = np.zeros(n_seeds)
        for seed in range(n_seeds):
            yl = draw_labels(y, per, seed)
            unl = yl < 0
            for m in methods:
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = _predict(m, yl, W_base, W_lssl, clusters, X, n_neighbors, C)
                seconds[m] += time.perf_counter() - t
                accuracy[m][per][seed] = float(np.mean(pred[unl] == y[unl]))
            logger.info("labels/class %d seed %d done", per, seed)
    for m in ("laplace", "poisson"):
        if m in seconds:
            seconds[m] += graph_s
    config = {
        "n_neighbors": n_neighbors,
        "lssl_neighbors": lssl_neighbors,
        "lssl_sigma_neighbor": lssl_sigma_neighbor,
        "n_seeds": n_seeds,
    }
    return SSLEvaluation(accuracy, seconds, n, config)


def _predict(
    method: str,
    yl: np.ndarray,
    W_base: Any,
    W_lssl: Any,
    clusters: np.ndarray | None,
    X: np.ndarray,
    k: int,
    C: int,
) -> np.ndarray:
    classes = np.arange(C)
    if method == "lssl":
        est = LaplacianSSL(affinity="precomputed", classes=classes)
        return est.fit(W_lssl, yl).transduction_
    if method == "laplace":
        est = LaplaceLearning(affinity="precomputed", classes=classes)
        return est.fit(W_base, yl).transduction_
    if method == "poisson":
        est = PoissonLearning(affinity="precomputed", classes=classes)
        return est.fit(W_base, yl).transduction_
    if method == "spectral":
        assert clusters is not None
        return name_clusters(clusters, yl, C)[clusters]
    from sklearn.semi_supervised import LabelSpreading

    return LabelSpreading(kernel="knn", n_neighbors=k).fit(X, yl).transduction_


def format_table(ev: SSLEvaluation, title: str) -> str:
    """A Markdown table: mean +- std accuracy (%) per method and label rate."""
    rates = sorted(next(iter(ev.accuracy.values())).keys())
    head = (
        "| method | "
        + " | ".join(f"{r} label{'s' if r > 1 else ''}/class" for r in rates)
        + " | fit time (s) |"
    )
    lines = [
        f"**{title}** (n = {ev.n_points}, {ev.config['n_seeds']} seeded draws)",
        "",
        head,
        "|" + "---|" * (len(rates) + 2),
    ]
    for m, by_rate in ev.accuracy.items():
        cells = [
            f"{100 * by_rate[r].mean():.1f} ± {100 * by_rate[r].std():.1f}"
            for r in rates
        ]
        lines.append(
            f"| {METHOD_NAMES[m]} | " + " | ".join(cells) + f" | {ev.seconds[m]:.1f} |"
        )
    return "\n".join(lines)


def plot_accuracy(ev: SSLEvaluation, path: Any, title: str) -> None:
    """Accuracy against labels per class (mean +- std), written as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for m, by_rate in ev.accuracy.items():
        rates = sorted(by_rate)
        mean = [100 * by_rate[r].mean() for r in rates]
        std = [100 * by_rate[r].std() for r in rates]
        ax.errorbar(rates, mean, yerr=std, marker="o", capsize=3, label=METHOD_NAMES[m])
    ax.set_xlabel("labels per class")
    ax.set_ylabel("accuracy on unlabelled points (%)")
    ax.set_title(title)
    ax.set_xscale("log")
    ax.set_xticks(sorted(next(iter(ev.accuracy.values())).keys()))
    ax.set_xticklabels([str(r) for r in sorted(next(iter(ev.accuracy.values())))])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
