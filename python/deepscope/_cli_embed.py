# The `deepscope embed` command: learned spectral embeddings on real data.
# SPDX-License-Identifier: MIT
"""``deepscope embed``: train BASiS (or the SpectralNet-style baseline) on a
labelled dataset, compare it with the exact full-graph eigenvectors and draw a
2-D view of the embedding.

Register it in the main parser with ``add_embed_command(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from deepscope._cli_common import flag_errors

__all__ = ["add_embed_command"]

EMBED_DATASETS = ("digits", "mnist5k", "fashion-mnist", "three-moons")
EMBED_METHODS = ("basis", "spectralnet")
#: Default subset size per dataset (None: all points).
DEFAULT_N = {
    "digits": None,
    "mnist5k": None,
    "fashion-mnist": 5000,
    "three-moons": 3000,
}


def add_embed_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``embed`` sub-command to an argparse sub-parser collection."""
    embed = subparsers.add_parser(
        "embed",
        help="train a learned spectral embedding (BASiS) and score it",
        description=(
            "Train BASiS (batch-aligned spectral embedding) or the "
            "SpectralNet-style baseline on a labelled dataset, then report "
            "k-means NMI and ACC, the Grassmann distance to the exact "
            "full-graph eigenvectors, the orthogonality error and timings, "
            "and write a 2-D view (PCA of the embedding, next to the exact "
            "one) as PNG. Graph: self-tuning kNN (k = 10, sigma at the 7th "
            "neighbour), symmetric normalised Laplacian; three-moons uses the "
            "published setting instead (9 anchors, D - W, K = 2)."
        ),
    )
    embed.add_argument(
        "--dataset",
        choices=EMBED_DATASETS,
        default="digits",
        help="default: digits (scikit-learn, 1,797 points)",
    )
    embed.add_argument(
        "-n",
        type=int,
        default=None,
        help="seeded random subset size (default: all; fashion-mnist 5000, "
        "three-moons 3000, rounded down to 9 anchors + 3 equal moons)",
    )
    embed.add_argument(
        "--method", choices=EMBED_METHODS, default="basis", help="default: basis"
    )
    embed.add_argument(
        "-k",
        "--components",
        type=int,
        default=None,
        dest="components",
        help="embedding dimension K (default: 10; three-moons supports only "
        "its published K = 2)",
    )
    embed.add_argument(
        "--iterations", type=int, default=300, help="training steps (default: 300)"
    )
    embed.add_argument(
        "--batch-size", type=int, default=512, help="points per batch (default: 512)"
    )
    embed.add_argument(
        "--anchors",
        type=int,
        default=250,
        help="BASiS anchors per batch, k-means++ (default: 250)",
    )
    embed.add_argument("--seed", type=int, default=0, help="default: 0")
    embed.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch, OpenMP and BLAS (default: as configured)",
    )
    embed.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu"
    )
    embed.add_argument(
        "--png",
        type=Path,
        default=None,
        help="2-D view (default: embed_DATASET_METHOD.png)",
    )
    embed.add_argument("--no-png", action="store_true", help="write no picture")
    embed.add_argument("--json", action="store_true", help="print the report as JSON")
    embed.set_defaults(run=run_embed)
    return embed


def _exact_embedding(X: Any, K: int, seed: int) -> Any:
    """First K eigenvectors of the full graph's symmetric normalised Laplacian."""
    import numpy as np
    from sklearn.manifold import spectral_embedding

    from deepscope.graph import knn_graph

    W = knn_graph(X.astype(np.float64), 10, sigma_neighbor=7).affinity
    E = spectral_embedding(
        W, n_components=K, drop_first=False, norm_laplacian=True, random_state=seed
    )
    # scikit-learn returns D^-1/2 u; D^1/2 gives the Laplacian eigenvectors u.
    return E * np.sqrt(np.asarray(W.sum(axis=1)).ravel())[:, None]


def _pca2(E: Any) -> Any:
    import numpy as np

    C = E - E.mean(0)
    _, _, Vt = np.linalg.svd(C, full_matrices=False)
    return C @ Vt[:2].T if Vt.shape[0] >= 2 else np.hstack([C, np.zeros_like(C)])


def _plot(path: Path, E: Any, exact: Any, y: Any, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, emb, name in ((axes[0], E, title), (axes[1], exact, "exact eigenvectors")):
        P = _pca2(emb)
        ax.scatter(P[:, 0], P[:, 1], c=y, s=3, cmap="tab10", linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("2-D PCA view of the spectral embedding (colour: class)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _check_args(args: argparse.Namespace) -> None:
    for name, flag, lo in (
        ("n", "-n", 2),
        ("components", "--components", 1),
        ("iterations", "--iterations", 1),
        ("batch_size", "--batch-size", 2),
        ("anchors", "--anchors", 1),
        ("threads", "--threads", 1),
    ):
        value = getattr(args, name)
        if value is not None and value < lo:
            raise ValueError(f"{flag}: expected an integer >= {lo}, got {value}")
    if args.dataset == "three-moons":
        # The published setting (nine anchors, K = 2) is the only one run.
        if args.components is not None and args.components != 2:
            raise ValueError(
                f"-k: expected 2 for three-moons (the published setting, "
                f"K = 2), got {args.components}"
            )
        if args.n is not None and args.n < 12:
            raise ValueError(
                f"-n: expected an integer >= 12 for three-moons (9 anchors "
                f"and a point per moon), got {args.n}"
            )
    if args.png is not None and not args.no_png:
        # Checked before training, not after it: matplotlib picks the format
        # from the suffix (adding ".png" when there is none).
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        formats = sorted(Figure().canvas.get_supported_filetypes())
        suffix = args.png.suffix.lower().lstrip(".")
        if suffix not in formats:
            raise ValueError(
                f"--png: expected a file name ending in .png (or one of "
                f"{', '.join('.' + f for f in formats)}), got {str(args.png)!r}"
            )
        if not args.png.parent.is_dir():
            raise ValueError(
                f"--png: expected an existing folder, got {str(args.png.parent)!r}"
            )


def run_embed(args: argparse.Namespace) -> int:
    """Trains, scores and draws the embedding; prints a report (or JSON)."""
    import contextlib

    import torch

    _check_args(args)
    if args.threads is None:
        return _run_embed(args)
    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with contextlib.ExitStack() as stack:
            with contextlib.suppress(ImportError):
                from threadpoolctl import threadpool_limits

                stack.enter_context(threadpool_limits(args.threads))
            return _run_embed(args)
    finally:
        torch.set_num_threads(before)


def _run_embed(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from deepscope.graph import metrics
    from deepscope.graph._basis import BASiS, SpectralNetEmbedding
    from deepscope.graph._datasets import load_dataset, three_moons

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but no CUDA GPU is available")
    n = args.n if args.n is not None else DEFAULT_N[args.dataset]
    moons = args.dataset == "three-moons"
    if moons:
        X, y, anchor_rows = three_moons(n, seed=args.seed)
        K = 2
        setting: dict[str, Any] = dict(
            weight="gaussian",
            laplacian="combinatorial",
            n_neighbors=19,
            sigma_neighbor=7,
            batch_size=min(args.batch_size, len(y) - 1),
        )
        model = (
            BASiS(
                K,
                anchors=anchor_rows,
                n_anchors=anchor_rows.size,
                drop_first=True,
                ransac_samples=5,
                ransac_tolerance=0.01,
                n_iterations=args.iterations,
                device=args.device,
                seed=args.seed,
                **setting,
            )
            if args.method == "basis"
            else SpectralNetEmbedding(
                K,
                n_iterations=args.iterations,
                device=args.device,
                seed=args.seed,
                **setting,
            )
        )
    else:
        with flag_errors({"n": "-n"}):
            X, y = load_dataset(args.dataset, n=n, seed=args.seed)
        K = args.components if args.components is not None else 10
        bs = min(args.batch_size, len(y))
        if args.method == "basis":
            model = BASiS(
                K,
                n_anchors=min(args.anchors, bs - 1),
                batch_size=bs,
                n_iterations=args.iterations,
                device=args.device,
                seed=args.seed,
            )
        else:
            model = SpectralNetEmbedding(
                K,
                batch_size=bs,
                n_iterations=args.iterations,
                device=args.device,
                seed=args.seed,
            )
    t0 = time.perf_counter()
    model.fit(X, y, progress=True)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    E = model.transform(X)
    transform_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if moons and args.method == "basis":
        # The published score: exact eigenvectors aligned through the anchors.
        exact = model.aligned_eigenvectors(X, anchor_rows)
    elif moons:
        exact = _moons_exact(X, setting)
    else:
        exact = _exact_embedding(X, K, args.seed)
    exact_s = time.perf_counter() - t0
    clusters = metrics.cluster_scores(E, y, seed=args.seed)
    report = {
        "dataset": args.dataset,
        "n_points": int(len(y)),
        "n_features": int(X.shape[1]),
        "method": args.method,
        "components": int(K),
        "iterations": args.iterations,
        "batch_size": int(model.batch_size),
        "seed": args.seed,
        "nmi": clusters.nmi,
        "acc": clusters.acc,
        "grassmann_to_exact": metrics.grassmann_distance(E, exact),
        "orthogonality": metrics.orthogonality_error(E),
        "exact_nmi": metrics.cluster_scores(exact, y, seed=args.seed).nmi,
        "fit_s": fit_s,
        "step_ms": 1e3 * fit_s / args.iterations,
        "transform_s": transform_s,
        "transform_points_per_s": len(y) / max(transform_s, 1e-9),
        "exact_s": exact_s,
    }
    png = None
    if not args.no_png:
        png = args.png or Path(f"embed_{args.dataset}_{args.method}.png")
        _plot(png, np.asarray(E), exact, y, f"{args.method} ({args.dataset})")
        report["png"] = str(png)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
        return 0
    print(
        f"{args.method} on {args.dataset}: N = {report['n_points']}, "
        f"D = {report['n_features']}, K = {K}, {args.iterations} iterations, "
        f"batch {report['batch_size']}, seed {args.seed}"
    )
    print(
        f"  k-means NMI {report['nmi']:.4f}  ACC {report['acc']:.4f}  "
        f"(exact eigenvectors: NMI {report['exact_nmi']:.4f})"
    )
    print(
        f"  Grassmann to exact {report['grassmann_to_exact']:.4f} (0..{K})  "
        f"orthogonality {report['orthogonality']:.4f}"
    )
    print(
        f"  fit {fit_s:.1f} s ({report['step_ms']:.1f} ms/step)  transform "
        f"{transform_s * 1e3:.1f} ms ({report['transform_points_per_s']:.3g} "
        f"points/s)  exact eigenvectors {exact_s:.1f} s"
    )
    if png is not None:
        print(f"  wrote {png}")
    return 0


def _moons_exact(X: Any, setting: dict[str, Any]) -> Any:
    from deepscope.graph._basis import batch_eigenvectors

    return batch_eigenvectors(
        X,
        3,
        n_neighbors=setting["n_neighbors"],
        sigma_neighbor=setting["sigma_neighbor"],
        weight=setting["weight"],
        laplacian=setting["laplacian"],
    ).numpy()
