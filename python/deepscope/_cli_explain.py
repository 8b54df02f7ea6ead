# The `deepscope explain` command: per-point importance of a classifier's prediction.
# SPDX-License-Identifier: MIT
"""``deepscope explain [INPUT] [--model CKPT] [--measure M] -o OUT``.

``M`` is ``fbi``, ``critical`` or ``gradient``. Classifies one point cloud
with a deepscope checkpoint (the shipped PointNet trained on Fashion-MNIST
points by default), explains the prediction with
:func:`deepscope.importance.explain`, prints the predicted class, the entropy
score and the points an importance-based outlier filter would remove, and
writes the per-point importance as a coloured PLY (``OUT``), the removed
points as ``OUT_outliers.ply`` and a PNG picture. Without INPUT it explains a
Fashion-MNIST test sample (``--index``), or the embedded Stanford bunny when
Fashion-MNIST is not installed. Registered in :mod:`deepscope.cli` through
:func:`add_explain_command`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepscope._cli_common import check_ply_output

__all__ = ["add_explain_command"]

CLI_MEASURES = ("fbi", "critical", "gradient")


def add_explain_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``explain`` sub-command to the ``deepscope`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The ``explain`` parser (its ``run`` default runs the command and
        returns the exit status).
    """
    explain = subparsers.add_parser(
        "explain",
        help="explain a classifier's prediction by per-point importance",
        description=(
            "Classify a point cloud (a Fashion-MNIST test sample when INPUT is "
            "omitted, or the embedded bunny without Fashion-MNIST), write the "
            "per-point importance as a coloured PLY and a PNG, and report the "
            "predicted class, the entropy score and the points an outlier "
            "filter would remove."
        ),
    )
    explain.add_argument(
        "input",
        nargs="?",
        metavar="INPUT",
        help="mesh, point file or LiDAR scan (read like `deepscope sample`)",
    )
    explain.add_argument(
        "--model",
        metavar="CKPT",
        default=None,
        help="checkpoint from `deepscope train` (default: shipped pointnet-fmnist)",
    )
    explain.add_argument("--measure", choices=CLI_MEASURES, default="fbi")
    explain.add_argument(
        "--index", type=int, default=0, help="Fashion-MNIST test sample (default: 0)"
    )
    explain.add_argument(
        "--points",
        type=int,
        default=None,
        help="points fed to the model (default: the checkpoint's, else 256)",
    )
    explain.add_argument(
        "--outliers",
        choices=("fraction", "entropy"),
        default="fraction",
        help="outlier filter: top --outlier-fraction points by importance, or the "
        "Critical Points++ entropy-adaptive threshold (default: fraction)",
    )
    explain.add_argument(
        "--outlier-fraction", type=float, default=0.05, help="default: 0.05"
    )
    explain.add_argument("--seed", type=int, default=0, help="default: 0")
    explain.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output PLY (default: explain_SOURCE_MEASURE.ply in the current folder)",
    )
    explain.add_argument(
        "--png", type=Path, help="output picture (default: OUTPUT with .png suffix)"
    )
    explain.add_argument("--no-png", action="store_true", help="write no picture")
    explain.set_defaults(run=_run_explain)
    return explain


def _run_explain(args: argparse.Namespace) -> int:
    from deepscope import datasets
    from deepscope.importance import explain, importance_outliers
    from deepscope.models import load_checkpoint, pretrained

    if args.points is not None and args.points < 2:
        raise ValueError(f"--points: expected >= 2, got {args.points}")
    if not 0.0 <= args.outlier_fraction <= 1.0:
        raise ValueError(
            f"--outlier-fraction: expected 0 <= f <= 1, got {args.outlier_fraction}"
        )
    if args.index < 0:
        raise ValueError(f"--index: expected >= 0, got {args.index}")

    # Model.
    if args.model is None:
        model, model_label = pretrained("pointnet-fmnist"), "shipped pointnet-fmnist"
    else:
        if not Path(args.model).is_file():
            raise FileNotFoundError(f"{args.model}: no such file")
        model, model_label = load_checkpoint(args.model), str(args.model)
    meta = getattr(model, "meta", {}) or {}
    n_points = args.points or int(meta.get("n_points", 256))
    class_names = list(meta.get("class_names") or [])

    # Input cloud, normalised like the training clouds.
    label = None
    if args.input is not None:
        source = Path(args.input)
        if not source.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        raw = datasets.load_points(source)
        cloud = _fit(raw, n_points, args.seed)
        stem, description = source.stem, f"{source} ({raw.shape[0]} points)"
    else:
        cloud, label, stem, description = _default_input(args.index, n_points, args)
        trained_on = meta.get("dataset")
        if label is not None and trained_on not in (None, "fashion-mnist"):
            # One line on standard error (warnings.warn would add a source line).
            print(
                f"deepscope explain: warning: --model was trained on {trained_on!r} "
                "clouds, but the input is a Fashion-MNIST cloud: its prediction "
                "and label are of different class sets (pass INPUT to explain "
                "another cloud)",
                file=sys.stderr,
            )

    output = args.output or Path(f"explain_{stem}_{args.measure}.ply")
    check_ply_output(output)
    png = None if args.no_png else (args.png or output.with_suffix(".png"))
    outlier_ply = output.with_name(output.stem + "_outliers.ply")
    for path in (output, png):
        if path is not None and not path.parent.is_dir():
            raise ValueError(f"{path}: folder {path.parent} does not exist")

    # Explain and filter.
    start = time.perf_counter()
    result = explain(model, cloud, measure=args.measure)
    seconds = time.perf_counter() - start
    # The Critical Points++ uncertainty score: entropy of the argmax counts.
    if args.measure == "critical":
        cp_entropy = float(result.entropy)
    else:
        cp_entropy = float(explain(model, cloud, measure="critical").entropy)
    importance = np.asarray(result.importance, dtype=np.float64)
    mask = importance_outliers(
        importance, fraction=args.outlier_fraction, method=args.outliers
    )
    removed = np.flatnonzero(mask.removed)
    predicted = int(result.predicted)
    probabilities = _softmax(np.asarray(result.logits, dtype=np.float64))

    # Write.
    colors = _colors(importance)
    datasets.save_ply(output, cloud, colors=colors)
    datasets.save_ply(outlier_ply, cloud[removed], colors=colors[removed])
    if png is not None:
        _write_png(
            png,
            cloud,
            importance,
            removed,
            args.measure,
            predicted,
            class_names,
            cp_entropy,
        )

    name = _name(predicted, class_names)
    print(f"input      {description}, {cloud.shape[0]} points fed to the model")
    print(f"model      {model_label}")
    truth = "" if label is None else f" (true: {_name(label, class_names)})"
    print(f"predicted  {name}, p = {probabilities[predicted]:.3f}{truth}")
    print(
        f"entropy    {cp_entropy:.4f} (Critical Points++ score: normalized entropy "
        f"of the critical counts; {float(result.entropy):.4f} of the "
        f"{args.measure} importance)"
    )
    print(f"measure    {args.measure} in {seconds * 1e3:.1f} ms")
    shown = ", ".join(str(i) for i in removed[:20])
    more = " ..." if removed.size > 20 else ""
    print(
        f"outliers   {removed.size} point(s) the {args.outliers} filter removes: "
        f"[{shown}{more}]"
    )
    print(f"wrote      {output}\nwrote      {outlier_ply}")
    if png is not None:
        print(f"wrote      {png}")
    return 0


def _default_input(index: int, n_points: int, args: argparse.Namespace):
    from deepscope import datasets, pointsets

    try:
        data = pointsets.fashion_mnist_points(
            "test", n_points, seed=args.seed, limit=index + 1
        )
    except FileNotFoundError:
        cloud = _fit(datasets.bunny(n_points, seed=args.seed), n_points, args.seed)
        return cloud, None, "bunny", "embedded Stanford bunny (Fashion-MNIST missing)"
    except ValueError as error:
        raise ValueError(f"--index: {error}") from None
    if index >= len(data.labels):
        raise ValueError(
            f"--index: expected < {len(data.labels)} (the Fashion-MNIST test "
            f"samples), got {index}"
        )
    cloud = np.asarray(data.points[index], dtype=np.float32)
    label = int(data.labels[index])
    return cloud, label, f"fmnist{index}", f"Fashion-MNIST test sample {index}"


def _fit(points: np.ndarray, n_points: int, seed: int) -> np.ndarray:
    """A seeded subset of ``n_points`` points, centred and scaled to radius 1."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[0] == 0:
        raise ValueError("INPUT: the input has no points")
    rng = np.random.default_rng(seed)
    replace = points.shape[0] < n_points
    chosen = points[rng.choice(points.shape[0], n_points, replace=replace)]
    chosen = chosen - chosen.mean(axis=0)
    radius = float(np.linalg.norm(chosen, axis=1).max())
    return (chosen / (radius if radius > 0 else 1.0)).astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def _name(index: int, class_names: list[str]) -> str:
    if 0 <= index < len(class_names):
        return f"{class_names[index]} (class {index})"
    return f"class {index}"


def _colors(importance: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 viridis colours of the importance scaled to [0, 1]."""
    from matplotlib import colormaps

    low, high = float(importance.min()), float(importance.max())
    scaled = (importance - low) / (high - low) if high > low else importance * 0.0
    return (colormaps["viridis"](scaled)[:, :3] * 255).round().astype(np.uint8)


def _write_png(
    path: Path,
    cloud: np.ndarray,
    importance: np.ndarray,
    removed: np.ndarray,
    measure: str,
    predicted: int,
    class_names: list[str],
    entropy: float,
) -> None:
    """A 3-D view and a top view coloured by importance; outliers ringed red."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes3d = figure.add_subplot(1, 2, 1, projection="3d")
    axes3d.scatter(*cloud.T, c=importance, cmap="viridis", s=10, depthshade=False)
    axes3d.scatter(*cloud[removed].T, s=60, facecolors="none", edgecolors="red")
    axes3d.set_title("3-D view")
    top = figure.add_subplot(1, 2, 2)
    shown = top.scatter(cloud[:, 0], cloud[:, 1], c=importance, cmap="viridis", s=14)
    top.scatter(
        *cloud[removed, :2].T,
        s=70,
        facecolors="none",
        edgecolors="red",
        label=f"outlier filter removes {removed.size}",
    )
    top.set_aspect("equal")
    top.set_title("top view (x, y)")
    top.legend(loc="lower right", fontsize=8)
    figure.colorbar(shown, ax=top, label=f"{measure} importance")
    figure.suptitle(
        f"predicted {_name(predicted, class_names)}; entropy score {entropy:.3f}"
    )
    figure.savefig(path, format="png")
