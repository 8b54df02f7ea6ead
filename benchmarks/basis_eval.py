# BASiS vs a SpectralNet-style network vs exact full-graph eigenvectors.
# SPDX-License-Identifier: MIT
"""Real-data evaluation of learned spectral embeddings (small scale, CPU).

Usage: ``python benchmarks/basis_eval.py [--dataset digits] [--seeds 3]
[--iterations 300]``. All three embeddings use the same graph family: a
self-tuning kNN graph (k = 10, sigma at the 7th neighbour, (W + W^T) / 2) and
the symmetric normalised Laplacian, K = 10 eigenvectors (trivial included).
"Exact" is scikit-learn ``spectral_embedding(drop_first=False)`` of the full
graph, multiplied back by D^1/2 so that it spans the same space as the
Laplacian eigenvectors the networks learn (scikit-learn returns
D^-1/2 u). Scores: NMI and Hungarian ACC of k-means(10), squared Grassmann
distance (after QR) to the exact eigenvectors, orthogonality error, linear
probe accuracy (50 % held out), fit seconds. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from deepscope.graph import knn_graph, metrics
from deepscope.graph._basis import BASiS, SpectralNetEmbedding
from deepscope.graph._datasets import load_dataset

K = 10


def exact_embedding(X: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import spectral_embedding

    W = knn_graph(X.astype(np.float64), 10, sigma_neighbor=7).affinity
    E = spectral_embedding(
        W, n_components=K, drop_first=False, norm_laplacian=True, random_state=seed
    )
    return E * np.sqrt(np.asarray(W.sum(axis=1)).ravel())[:, None]


def scores(E: np.ndarray, y: np.ndarray, ref: np.ndarray, seed: int) -> dict:
    c = metrics.cluster_scores(E, y, seed=seed)
    return {
        "NMI": c.nmi,
        "ACC": c.acc,
        "Grassmann": metrics.grassmann_distance(E, ref),
        "orth": metrics.orthogonality_error(E),
        "probe": metrics.linear_probe_accuracy(E, y, seed=seed),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--anchors", default="kmeans++")
    p.add_argument("--alignment", default="ransac")
    p.add_argument("--n-anchors", type=int, default=250)
    p.add_argument("--no-spectralnet", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    X, y = load_dataset(args.dataset, n=args.n)
    rows: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        t = time.perf_counter()
        ref = exact_embedding(X, seed)
        r = scores(ref, y, ref, seed)
        r["s"] = time.perf_counter() - t
        rows.setdefault("exact (sklearn spectral_embedding)", []).append(r)
        models = {
            f"BASiS ({args.alignment}, {args.n_anchors} {args.anchors} anchors)": BASiS(
                K,
                n_anchors=args.n_anchors,
                anchors=args.anchors,
                alignment=args.alignment,
                n_iterations=args.iterations,
                seed=seed,
            ),
            "SpectralNet-style (QR + jitter)": SpectralNetEmbedding(
                K, n_iterations=args.iterations, seed=seed
            ),
        }
        if args.no_spectralnet:
            models.pop("SpectralNet-style (QR + jitter)")
        for name, m in models.items():
            t = time.perf_counter()
            E = m.fit(X, y).transform(X)
            secs = time.perf_counter() - t
            r = scores(E, y, ref, seed)
            r["s"] = secs
            rows.setdefault(name, []).append(r)
            print(seed, name, {k: round(v, 4) for k, v in r.items()}, flush=True)
    keys = ["NMI", "ACC", "Grassmann", "orth", "probe", "s"]
    print(
        f"\n{args.dataset}: N = {len(y)}, K = {K}, {args.seeds} seeds, "
        f"{args.iterations} iterations, batch 512\n"
    )
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, rs in rows.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in rs])
            cells.append(
                f"{v.mean():.3f} ± {v.std():.3f}" if k != "s" else f"{v.mean():.1f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
