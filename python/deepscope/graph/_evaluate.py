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
from deepscope.graph._knn_graph import _search, graph_from_neighbors
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
        seconds: ``{method: total fit seconds over all runs}``: the method's
            own work (its own graph, if any, and its fits), without the
            shared neighbour search and base graph.
        n_points: number of points.
        config: the graph settings used; ``knn_seconds`` is the exact
            neighbour search, ``graph_seconds`` that search plus the base
            graph, the time shared by all methods.
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
    seeds_for: dict[str, int] | None = None,
    neighbors: tuple[np.ndarray, np.ndarray] | None = None,
) -> SSLEvaluation:
    """Mean accuracy on unlabelled points over seeded label draws.

    Graphs: Laplace / Poisson learning use the k = ``n_neighbors`` graph with
    GraphLearning's exp(-4 d^2 / d_k^2) weights; unsupervised spectral
    clustering the self-tuning graph at the same k (clusters named from each
    draw's labelled points); L_SSL the reference code's MNIST setting, k = 49
    neighbours (50 with self) and sigma at the 20th. LabelSpreading is
    scikit-learn's, given the connectivity matrix its ``kernel='knn'`` would
    build (each point and its k - 1 nearest others) from the same exact kNN
    search as a callable kernel, so that no second search is run.

    One exact kNN search at the largest k serves every graph (exact lists
    at a smaller k are prefixes). ``seeds_for`` runs fewer draws (seeds
    0..s-1) for the named methods; their arrays are shorter. ``neighbors``
    passes a precomputed exact (indices, squared distances) pair with at
    least that many columns (the search is then skipped).
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"methods: unknown {sorted(unknown)}; expected {METHODS}")
    n = len(y)
    # Class codes 0..C-1 (the methods below name classes np.arange(C)), so
    # that any label values work, e.g. a subset missing some classes.
    if n == 0:
        raise ValueError("y: expected at least one labelled point, got none")
    _, y = np.unique(np.asarray(y), return_inverse=True)
    y = y.reshape(-1)
    C = int(y.max()) + 1
    largest = int(np.bincount(y).max())
    for per in labels_per_class:
        if check_count(per, "labels_per_class") >= largest:
            raise ValueError(
                f"labels_per_class: expected fewer than {largest} (the largest "
                f"class) so that some points stay unlabelled, got {per}"
            )
    accuracy: dict[str, dict[int, np.ndarray]] = {m: {} for m in methods}
    seconds = dict.fromkeys(methods, 0.0)

    from deepscope._arrays import prepare

    seeds_for = dict(seeds_for or {})
    t = time.perf_counter()
    k_l = min(lssl_neighbors, n - 1) if "lssl" in methods else 0
    k_max = max(min(n_neighbors, n - 1), k_l)
    view = prepare(np.ascontiguousarray(X), "X", ndim=(2,))
    if neighbors is None:
        idx, d2, _ = _search(view, None, k=k_max, exclude_self=True, block_size=4096)
    else:
        idx, d2 = (np.asarray(a) for a in neighbors)
        if idx.shape[0] != n or idx.shape[1] < k_max:
            raise ValueError(
                f"neighbors: expected at least ({n}, {k_max}) lists, got {idx.shape}"
            )
    knn_s = time.perf_counter() - t
    kb = min(n_neighbors, n - 1)
    t = time.perf_counter()
    W_base = graph_from_neighbors(
        idx[:, :kb], d2[:, :kb], weight="kth_neighbor", dtype=view.dtype
    ).affinity
    # The search and the base graph are shared: reported once (config), not
    # added to each method's fit time.
    graph_s = knn_s + time.perf_counter() - t
    W_lssl = None
    if "lssl" in methods:
        t = time.perf_counter()
        W_lssl = graph_from_neighbors(
            idx[:, :k_l],
            d2[:, :k_l],
            sigma_neighbor=min(lssl_sigma_neighbor, k_l),
            dtype=view.dtype,
        ).affinity
        seconds["lssl"] += time.perf_counter() - t
    clusters = None
    if "spectral" in methods:
        t = time.perf_counter()
        W_sc = graph_from_neighbors(idx[:, :kb], d2[:, :kb], dtype=view.dtype)
        clusters = spectral_clustering(W_sc.affinity, C)
        seconds["spectral"] += time.perf_counter() - t
    W_ls = None
    if "label_spreading" in methods:
        import scipy.sparse as sp

        t = time.perf_counter()
        # scikit-learn's knn kernel: each point plus its k - 1 nearest others.
        cols = np.concatenate([np.arange(n)[:, None], idx[:, : kb - 1]], axis=1)
        W_ls = sp.csr_matrix(
            (np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, kb)),
            shape=(n, n),
        )
        seconds["label_spreading"] += time.perf_counter() - t

    for per in labels_per_class:
        for m in methods:
            accuracy[m][per] = np.zeros(min(n_seeds, seeds_for.get(m, n_seeds)))
        for seed in range(n_seeds):
            yl = draw_labels(y, per, seed)
            unl = yl < 0
            for m in methods:
                if seed >= accuracy[m][per].size:
                    continue
                t = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = _predict(m, yl, W_base, W_lssl, clusters, W_ls, C)
                seconds[m] += time.perf_counter() - t
                accuracy[m][per][seed] = float(np.mean(pred[unl] == y[unl]))
            logger.info("labels/class %d seed %d done", per, seed)
    config = {
        "n_neighbors": n_neighbors,
        "lssl_neighbors": lssl_neighbors,
        "lssl_sigma_neighbor": lssl_sigma_neighbor,
        "n_seeds": n_seeds,
        "seeds_for": seeds_for,
        "knn_seconds": knn_s,
        "graph_seconds": graph_s,
    }
    return SSLEvaluation(accuracy, seconds, n, config)


def _predict(
    method: str,
    yl: np.ndarray,
    W_base: Any,
    W_lssl: Any,
    clusters: np.ndarray | None,
    W_ls: Any,
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

    def kernel(a: Any, b: Any) -> Any:
        return W_ls

    rows = np.arange(W_ls.shape[0], dtype=np.float64)[:, None]
    return LabelSpreading(kernel=kernel).fit(rows, yl).transduction_


def format_table(ev: SSLEvaluation, title: str) -> str:
    """A Markdown table: mean +- std accuracy (%) per method and label rate.

    The fit-time column is each method's own time; the shared kNN graph
    (exact search and base graph) is reported once, below the table.
    """
    rates = sorted(next(iter(ev.accuracy.values())).keys())
    head = (
        "| method | "
        + " | ".join(f"{r} label{'s' if r > 1 else ''}/class" for r in rates)
        + " | draws | fit time (s) |"
    )
    lines = [
        f"**{title}** (n = {ev.n_points}, {ev.config['n_seeds']} seeded draws)",
        "",
        head,
        "|" + "---|" * (len(rates) + 3),
    ]
    for m, by_rate in ev.accuracy.items():
        cells = [
            f"{100 * by_rate[r].mean():.1f} ± {100 * by_rate[r].std():.1f}"
            for r in rates
        ]
        lines.append(
            f"| {METHOD_NAMES[m]} | "
            + " | ".join(cells)
            + f" | {by_rate[rates[0]].size} | {ev.seconds[m]:.1f} |"
        )
    if "graph_seconds" in ev.config:
        lines += [
            "",
            f"kNN graph: {ev.config['graph_seconds']:.1f} s (shared by all "
            "methods, not included in their fit times)",
        ]
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
