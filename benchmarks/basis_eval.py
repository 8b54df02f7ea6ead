# BASiS vs a SpectralNet-style network vs exact full-graph eigenvectors.
# SPDX-License-Identifier: MIT
"""Real-data evaluation of learned spectral embeddings (small scale, CPU).

Usage: ``python benchmarks/basis_eval.py [--dataset digits] [--n N] [--seeds 3]
[--iterations 300] [--batch-sizes 512] [--json OUT.json]``, and
``python benchmarks/basis_eval.py --dataset three-moons`` for the published
three-moons setting (n = 10,000, 1,000 iterations).

Real data: all embeddings use the same graph family, a self-tuning kNN graph
(k = 10, sigma at the 7th neighbour, (W + W^T) / 2) and the symmetric
normalised Laplacian, K = 10 eigenvectors (trivial included). "Exact" is
scikit-learn ``spectral_embedding(drop_first=False)`` of the full graph,
multiplied back by D^1/2 so that it spans the same space as the Laplacian
eigenvectors the networks learn (scikit-learn returns D^-1/2 u); it is
computed once (seed 0). BASiS uses min(250, batch / 2) k-means++ anchors.
Scores: NMI and Hungarian ACC of k-means(10), squared Grassmann distance (after
QR) to the exact eigenvectors, orthogonality error, linear probe accuracy
(50 % held out), fit seconds. Prints a Markdown table (mean ± std over seeds).

Three-moons: the published setting (see ``tests/test_basis.py``): train on
``three_moons(10_000, seed=s)``, score on an independent
``three_moons(2_000, seed=1000 + s)`` against the exact eigenvectors of the test
graph aligned to the reference through the nine anchors, as in the paper.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from deepscope.graph import knn_graph, metrics
from deepscope.graph._basis import BASiS, SpectralNetEmbedding
from deepscope.graph._datasets import load_dataset, three_moons

K = 10

MOONS = dict(
    n_anchors=9,
    weight="gaussian",
    laplacian="combinatorial",
    drop_first=True,
    n_neighbors=19,
    sigma_neighbor=7,
    batch_size=265,
    ransac_samples=5,
    ransac_tolerance=0.01,
)


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


def table(rows: dict[str, list[dict]], keys: list[str]) -> str:
    out = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, rs in rows.items():
        cells = []
        for k in keys:
            v = np.array([r[k] for r in rs])
            cells.append(
                f"{v.mean():.4f} ± {v.std():.4f}" if k != "s" else f"{v.mean():.1f}"
            )
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def run_moons(args: argparse.Namespace) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        X, _, anchors = three_moons(args.n or 10_000, seed=seed)
        Xt, yt, rows_t = three_moons(2_000, seed=1000 + seed)
        t = time.perf_counter()
        m = BASiS(
            2, anchors=anchors, n_iterations=args.iterations, seed=seed, **MOONS
        ).fit(X)
        secs = time.perf_counter() - t
        E = m.transform(Xt)
        U = m.aligned_eigenvectors(Xt, rows_t)
        c = metrics.cluster_scores(E, yt, seed=seed)
        r = {
            "NMI": c.nmi,
            "ACC": c.acc,
            "Grassmann": metrics.grassmann_distance(E, U),
            "orth": metrics.orthogonality_error(E),
            "s": secs,
        }
        print(seed, {k: round(v, 5) for k, v in r.items()}, flush=True)
        rows.setdefault("BASiS, published three-moons setting", []).append(r)
    print(
        f"\nthree-moons: train N = {len(X)}, test N = {len(Xt)}, "
        f"{args.iterations} iterations, {args.seeds} seeds\n"
    )
    print(table(rows, ["NMI", "ACC", "Grassmann", "orth", "s"]))
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[512])
    p.add_argument("--methods", nargs="+", default=["basis", "spectralnet"])
    p.add_argument("--anchors", default="kmeans++")
    p.add_argument("--alignment", default="ransac")
    p.add_argument("--extra-eigenvectors", type=int, default=0)
    p.add_argument("--reference-batches", type=int, default=1)
    p.add_argument("--json", default=None, help="write every run's scores here")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.dataset == "three-moons":
        args.iterations = args.iterations or 1000
        rows = run_moons(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    args.iterations = args.iterations or 300
    X, y = load_dataset(args.dataset, n=args.n)
    t = time.perf_counter()
    ref = exact_embedding(X, 0)
    exact_s = time.perf_counter() - t
    rows: dict[str, list[dict]] = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = scores(ref, y, ref, seed)
        r["s"] = exact_s
        rows.setdefault("exact (sklearn spectral_embedding)", []).append(r)
        for bs in args.batch_sizes:
            na = min(250, bs // 2)
            for method in args.methods:
                if method == "basis":
                    name = f"BASiS ({args.alignment}, {na} {args.anchors} anchors)"
                    if args.extra_eigenvectors or args.reference_batches > 1:
                        name += (
                            f" + {args.extra_eigenvectors} extra eigenvectors,"
                            f" {args.reference_batches} reference batches"
                        )
                    m = BASiS(
                        K,
                        n_anchors=na,
                        anchors=args.anchors,
                        alignment=args.alignment,
                        extra_eigenvectors=args.extra_eigenvectors,
                        reference_batches=args.reference_batches,
                        batch_size=bs,
                        n_iterations=args.iterations,
                        seed=seed,
                    )
                else:
                    name = "SpectralNet-style (QR + jitter)"
                    m = SpectralNetEmbedding(
                        K, batch_size=bs, n_iterations=args.iterations, seed=seed
                    )
                name += f", batch {bs}"
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
        f"{args.iterations} iterations\n"
    )
    print(table(rows, keys))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
