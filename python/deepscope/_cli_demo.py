# The `deepscope demo` command: classify, corrupt, compare plain and EPiC, explain.
# SPDX-License-Identifier: MIT
"""``deepscope demo [-o DIR]``: the package's end-to-end tour on real data.

With no arguments it loads Fashion-MNIST test clouds (1024 points; it stops
with a clear error when Fashion-MNIST is not installed, because the shipped
models were trained on it), classifies them with
the shipped PointNet, corrupts them with the seven ModelNet-C corruptions at
five levels, evaluates the shipped plain DGCNN (the CE normaliser), the plain
PointNet, the EPiC ensemble and EPiC plus a critical-subset member, explains a
few predictions with FBI feature norms,
and writes a report (``report.md``) and PNG figures (corruption examples,
importance maps, accuracy per corruption level) into ``DIR`` (default
``deepscope-demo``). EPiC members come from the shipped member checkpoints
when installed, otherwise the plain backbone serves every member (a
training-free ensemble; the report says which).
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_demo_command"]

METHODS = ("patch", "curve", "random")


def add_demo_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``demo`` sub-command to the ``deepscope`` parser."""
    parser = subparsers.add_parser(
        "demo",
        help="end-to-end tour: classify, corrupt, EPiC vs plain, explain (PNG report)",
        description=(
            "Classify test clouds with the shipped PointNet, corrupt them "
            "(ModelNet-C), compare plain / EPiC / EPiC + critical subset, explain "
            "predictions with FBI, and write a Markdown report with PNG figures."
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("deepscope-demo"),
        help="folder (default: deepscope-demo)",
    )
    parser.add_argument(
        "--limit", type=int, default=50, help="test clouds (default: 50)"
    )
    parser.add_argument(
        "--kinds", nargs="+", default=None, help="corruptions (default: all seven)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="corruption seed (default: 0)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=_run_demo)
    return parser


def _members(plain: Any) -> tuple[dict[str, Any], str]:
    from deepscope.models import load_checkpoint

    folder = resources.files("deepscope.robust").joinpath("weights")
    found = {}
    for name in (*METHODS, "critical"):
        item = folder.joinpath(f"{name}.pt")
        if item.is_file():
            with resources.as_file(item) as path:
                found[name] = load_checkpoint(path)
    if all(m in found for m in METHODS):
        return found, "shipped EPiC member checkpoints"
    return {name: plain for name in (*METHODS, "critical")}, (
        "the plain backbone in every member (no member checkpoints installed)"
    )


def _reference() -> tuple[dict[str, Any], str]:
    """The CE normaliser: the shipped plain DGCNN, else the plain PointNet."""
    from deepscope.models import pretrained

    try:
        # The kNN kernel on every layer: the fastest CPU path for these clouds.
        dgcnn = pretrained("dgcnn-fmnist", knn="deepscope")
    except FileNotFoundError:
        return {}, "the plain PointNet (no DGCNN weights installed)"
    return {"dgcnn-fmnist": dgcnn}, "the shipped plain DGCNN (dgcnn-fmnist)"


def _data(limit: int) -> tuple[Any, str]:
    from deepscope import pointsets

    # The shipped PointNet and EPiC members were trained on Fashion-MNIST
    # clouds: other data would give meaningless accuracies, so there is no
    # fallback (FileNotFoundError says how to install the data set).
    data = pointsets.fashion_mnist_points("test", 1024, seed=1, limit=limit)
    return data, "Fashion-MNIST"


def _run_demo(args: argparse.Namespace) -> int:
    import torch

    from deepscope import robust
    from deepscope.models import pretrained
    from deepscope.robust._evaluate import _ensemble_accuracies

    if args.limit < 1:
        raise ValueError(f"--limit: expected >= 1, got {args.limit}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    # Checked before the data, models and output folder (seconds, not minutes).
    kinds = robust.CORRUPTIONS if args.kinds is None else tuple(args.kinds)
    unknown = [k for k in kinds if k not in robust.CORRUPTIONS]
    if unknown:
        raise ValueError(
            f"--kinds: expected some of {', '.join(robust.CORRUPTIONS)}, got "
            f"{', '.join(unknown)}"
        )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    data, source = _data(args.limit)
    plain = pretrained("pointnet-fmnist")
    references, reference = _reference()
    members, member_source = _members(plain)
    epic = robust.EPiC.from_backbones([members[m] for m in METHODS])
    critical = robust.CriticalSubsetMember(members["critical"])
    print(f"data     {source} test: {len(data.labels)} clouds x 1024 points")
    print(f"members  {member_source}")
    print(f"CE/RCE   normalised by {reference}")

    dataset = robust.corrupt_dataset(data.points, kinds=kinds, seed=args.seed)
    bar = _bar(len(dataset), args.quiet)

    def progress(model: str, split: str) -> None:
        if bar is not None:
            bar.set_description(split)
            bar.update(1)

    accuracy = _ensemble_accuracies(
        plain,
        epic,
        critical,
        dataset,
        data.labels,
        references=references,
        progress=progress,
    )
    if bar is not None:
        bar.close()
    kinds_present = [k for k in robust.CORRUPTIONS if f"{k}_0" in dataset]
    normaliser = next(iter(references), "plain")
    scores = {
        name: robust.mce(acc, accuracy[normaliser], kinds=kinds_present)
        for name, acc in accuracy.items()
    }
    report = robust.RobustnessReport(accuracy, scores, normaliser, {})
    table = robust.format_report(report)
    print(table)

    figures = _figures(args.output, data, dataset, report, plain)
    lines = [
        "# deepscope demo",
        "",
        f"Data: {source} test set, {len(data.labels)} clouds of 1024 points, "
        f"corrupted with the seven ModelNet-C corruptions at five levels "
        f"(seed {args.seed}). Members: {member_source}. CE/RCE normalised by "
        f"{reference}.",
        "",
        robust.format_report(report, markdown=True),
        "",
        *[f"![{name}]({name}.png)" for name in figures],
        "",
        f"Total time {time.perf_counter() - started:.0f} s.",
    ]
    (args.output / "report.md").write_text("\n".join(lines) + "\n")
    for name in figures:
        print(f"wrote    {args.output / (name + '.png')}")
    print(f"wrote    {args.output / 'report.md'}")
    return 0


def _bar(total: int, quiet: bool) -> Any:
    if quiet:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="split", file=sys.stderr)


def _figures(
    folder: Path, data: Any, dataset: dict, report: Any, plain: Any
) -> list[str]:
    """Writes the PNGs; returns their names (none without matplotlib)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return []
    import torch

    from deepscope.importance import feature_norms
    from deepscope.robust import CORRUPTIONS, LEVELS

    names = []
    # Corruption examples: the first cloud under every corruption at level 2.
    splits = ["clean"] + [f"{k}_2" for k in kinds_of(dataset, CORRUPTIONS)]
    # At most four panels a row; fewer corruptions (--kinds) leave no empty cells.
    columns = min(4, len(splits))
    rows = -(-len(splits) // columns)
    figure = Figure(
        figsize=(2.35 * columns + 1.6, 2.9 * rows), dpi=100, layout="constrained"
    )
    FigureCanvasAgg(figure)
    low, high = z_range(dataset)
    for i, split in enumerate(splits):
        axes = figure.add_subplot(rows, columns, i + 1)
        cloud = np.asarray(dataset[split][0])
        dots = axes.scatter(
            cloud[:, 0],
            cloud[:, 1],
            s=2,
            c=cloud[:, 2],
            cmap="viridis",
            vmin=low,
            vmax=high,
        )
        axes.set_title(split, fontsize=11)
        axes.set_aspect("equal")
        axes.axis("off")
    figure.colorbar(
        dots,
        ax=figure.axes,
        shrink=0.8,
        extend="both",
        label="z (from pixel intensity)",
    )
    figure.suptitle(
        "ModelNet-C corruptions at level 2 (first test cloud, seen from above)"
    )
    figure.savefig(folder / "corruptions.png")
    names.append("corruptions")

    # FBI importance maps of four predictions, each scaled to its maximum.
    clouds = torch.from_numpy(np.asarray(data.points[:4]))
    with torch.no_grad():
        logits, features = plain.forward_features(clouds)
    importance = feature_norms(features).numpy()
    importance = importance / np.maximum(importance.max(axis=1, keepdims=True), 1e-30)
    predicted = logits.argmax(1).numpy()
    figure = Figure(
        figsize=(2.6 * len(clouds) + 1.6, 3.6), dpi=100, layout="constrained"
    )
    FigureCanvasAgg(figure)
    for i in range(len(clouds)):
        axes = figure.add_subplot(1, len(clouds), i + 1)
        cloud = clouds[i].numpy()
        dots = axes.scatter(
            cloud[:, 0],
            cloud[:, 1],
            s=3,
            c=importance[i],
            cmap="inferno",
            vmin=0,
            vmax=1,
        )
        true = data.class_names[int(data.labels[i])]
        axes.set_title(f"{data.class_names[predicted[i]]} ({true})", fontsize=11)
        axes.set_aspect("equal")
        axes.axis("off")
    figure.colorbar(dots, ax=figure.axes, shrink=0.8, label="importance / max")
    figure.suptitle("FBI importance (feature norms); predicted (true)")
    figure.savefig(folder / "importance.png")
    names.append("importance")

    # Accuracy per corruption level: one panel per corruption, shared legend.
    kinds = kinds_of(dataset, CORRUPTIONS)
    figure = Figure(figsize=(2.2 * len(kinds) + 1.0, 3.6), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    lines = []
    for i, kind in enumerate(kinds):
        axes = figure.add_subplot(1, len(kinds), i + 1)
        for model, accuracy in report.accuracy.items():
            (line,) = axes.plot(
                LEVELS,
                [accuracy[f"{kind}_{lvl}"] for lvl in LEVELS],
                marker="o",
                markersize=3,
                label=model,
            )
            if i == 0:
                lines.append(line)
        axes.set_title(kind, fontsize=9)
        axes.set_ylim(-0.02, 1.02)  # lines at 0 or 1 stay off the frame
        axes.set_xticks(LEVELS)
        axes.set_xlabel("level", fontsize=8)
        axes.tick_params(labelsize=8)
        axes.tick_params(axis="x", labelrotation=45)
        if i == 0:
            axes.set_ylabel("accuracy", fontsize=8)
        else:
            axes.tick_params(axis="y", labelleft=False)
        axes.grid(alpha=0.3)
    if lines:
        figure.legend(
            handles=lines,
            loc="outside lower center",
            ncols=len(lines),
            fontsize=8,
            frameon=False,
        )
    figure.savefig(folder / "accuracy_per_level.png")
    names.append("accuracy_per_level")
    return names


def kinds_of(dataset: dict, corruptions: Any) -> list[str]:
    """The corruptions present in ``dataset`` at level 2, in the official order."""
    return [k for k in corruptions if f"{k}_2" in dataset]


def z_range(dataset: dict) -> tuple[float, float]:
    """The colour range of the corruption grid: the first clean cloud's z range.

    One scale for every panel, but not stretched by the far points add_global
    scatters (they would flatten all the other panels to one colour).
    """
    z = np.asarray(dataset["clean"][0])[:, 2]
    return float(z.min()), float(z.max())
