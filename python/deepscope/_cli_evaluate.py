# The `deepscope evaluate` command: accuracy under ModelNet-C corruptions, mCE, RmCE.
# SPDX-License-Identifier: MIT
"""``deepscope evaluate [--model CKPT] [--members DIR] [--data ...]``.

Builds a ModelNet-C style corrupted test set (seven corruptions, five levels,
published parameters) from labelled clouds, or reads the official ModelNet-C
HDF5 files (``--modelnet-c DIR``), evaluates the plain classifier and, with
``--members DIR`` (default: the shipped members), the EPiC ensemble
(``patch.pt``, ``curve.pt``, ``random.pt``; 12 members) and the ensemble plus
a critical-subset member (``critical.pt``), and prints clean accuracy,
per-corruption error and CE, mCE, RmCE and mOA. CE/RCE are normalised
(``--reference``) by a reference classifier evaluated on the same splits (by
default on Fashion-MNIST the shipped plain DGCNN ``dgcnn-fmnist``, the role
the published DGCNN plays on ModelNet-C), by the plain model (``plain``), or
by the published DGCNN accuracies (``published``, meaningful on ModelNet-C
only; the default with ``--modelnet-c`` / ``--modelnet40``).
Registered in :mod:`deepscope.cli` through :func:`add_evaluate_command`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_evaluate_command"]

DATASETS = ("fashion-mnist", "digits")
MEMBER_FILES = ("patch", "curve", "random", "critical")
#: deepscope.robust.CORRUPTIONS, repeated so that building the parser does
#: not import torch.
CORRUPTIONS = (
    "scale",
    "jitter",
    "rotate",
    "dropout_global",
    "dropout_local",
    "add_global",
    "add_local",
)


def add_evaluate_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``evaluate`` sub-command to the ``deepscope`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The ``evaluate`` parser (its ``run`` default runs the command).
    """
    parser = subparsers.add_parser(
        "evaluate",
        help="robustness under ModelNet-C corruptions: accuracy, mCE, RmCE",
        description=(
            "Corrupt a labelled test set with the seven ModelNet-C corruptions "
            "at five levels (or read the official ModelNet-C files), evaluate "
            "the plain classifier and optional EPiC / critical-subset members, "
            "and print the robustness table."
        ),
    )
    parser.add_argument(
        "--model",
        default="pointnet-fmnist",
        help="plain classifier: a checkpoint file or a shipped name "
        "(default: pointnet-fmnist)",
    )
    parser.add_argument(
        "--members",
        type=Path,
        default=Path("shipped"),
        help="folder with EPiC member checkpoints patch.pt, curve.pt, random.pt "
        "and optionally critical.pt (tools/robust_fmnist.py writes them); "
        "'shipped' (default) for the members that ship with the package, "
        "'none' for the plain model alone",
    )
    parser.add_argument("--data", choices=DATASETS, default="fashion-mnist")
    parser.add_argument(
        "--modelnet-c",
        type=Path,
        default=None,
        dest="modelnet_c",
        help="evaluate on the official ModelNet-C HDF5 folder instead of --data",
    )
    parser.add_argument(
        "--modelnet40",
        type=Path,
        default=None,
        help="corrupt the official ModelNet40 HDF5 test split (modelnet40_ply_"
        "hdf5_2048; first --points points per shape, as ModelNet-C) instead of --data",
    )
    parser.add_argument(
        "--points", type=int, default=1024, help="points per cloud (default: 1024)"
    )
    parser.add_argument(
        "--limit", type=int, default=50, help="test clouds used (default: 50)"
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=CORRUPTIONS,
        default=list(CORRUPTIONS),
        help="corruptions (default: all seven)",
    )
    parser.add_argument(
        "--reference",
        default="auto",
        help="CE normaliser: a checkpoint file or shipped name evaluated on the "
        "same splits (e.g. dgcnn-fmnist), 'plain' (the --model), 'published' "
        "(the published ModelNet-C DGCNN accuracies; alias 'dgcnn'), or 'auto' "
        "(default: dgcnn-fmnist on Fashion-MNIST, published on ModelNet, "
        "plain otherwise)",
    )
    parser.add_argument("--unrounded", action="store_true", help="no 3-dp rounding")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--json", type=Path, default=None, help="write results")
    parser.add_argument("--markdown", action="store_true", help="print Markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_evaluate)
    return parser


def _load_model(spec: str, option: str = "--model") -> Any:
    from deepscope.models import PRETRAINED, load_checkpoint, pretrained

    if spec in PRETRAINED:
        model = pretrained(spec)
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(
                f"{option}: {spec} is neither a file nor one of {sorted(PRETRAINED)}"
            )
        model = load_checkpoint(path)
    if getattr(model, "architecture", None) == "dgcnn":
        # The kNN kernel on every layer: faster than the dense feature-layer
        # search on CPU for these clouds, and no N x N distance matrix.
        model.knn = "deepscope"
    return model


#: The shipped normaliser for Fashion-MNIST clouds.
FMNIST_REFERENCE = "dgcnn-fmnist"


def _reference(args: argparse.Namespace) -> tuple[str, Any]:
    """Resolves ``--reference``: (kind, model), kind "plain" | "published" | a row.

    "plain" and "published" come with no model; any other kind is the row
    name of the returned reference classifier (a shipped name, or
    "reference" for a checkpoint file).
    """
    from deepscope.models import PRETRAINED

    spec = str(args.reference)
    automatic = spec == "auto"
    if automatic:
        if args.modelnet_c is not None or args.modelnet40 is not None:
            spec = "published"
        elif args.data == "fashion-mnist":
            spec = FMNIST_REFERENCE
        else:
            spec = "plain"
    if spec in ("plain", "published"):
        return spec, None
    if spec == "dgcnn":
        return "published", None
    if spec == args.model:
        return "plain", None
    try:
        model = _load_model(spec, "--reference")
    except FileNotFoundError:
        if not automatic:
            raise
        # A build without the shipped DGCNN weights: normalise by the plain model.
        return "plain", None
    return (spec if spec in PRETRAINED else "reference"), model


def _test_set(args: argparse.Namespace) -> tuple[dict[str, Any], Any, str]:
    from deepscope import pointsets, robust

    if args.modelnet_c is not None:
        names = ["clean"] + [f"{k}_{lvl}" for k in args.kinds for lvl in robust.LEVELS]
        loaded = robust.load_modelnet_c(args.modelnet_c, names)
        labels = loaded["clean"][1]
        dataset = {name: points[: args.limit] for name, (points, _) in loaded.items()}
        return dataset, labels[: args.limit], f"ModelNet-C ({args.modelnet_c})"
    if args.modelnet40 is not None:
        data = pointsets.modelnet40_h5(
            args.modelnet40, "test", n_points=args.points, limit=args.limit
        )
        dataset = robust.corrupt_dataset(data.points, kinds=args.kinds, seed=args.seed)
        label = (
            f"ModelNet40 test ({args.modelnet40}), {len(data.labels)} clouds x "
            f"{data.points.shape[1]} points, self-generated corruptions (seed "
            f"{args.seed}; not comparable with published ModelNet-C numbers)"
        )
        return dataset, data.labels, label
    loader = (
        pointsets.fashion_mnist_points
        if args.data == "fashion-mnist"
        else pointsets.digits_points
    )
    data = loader("test", args.points, seed=1, limit=args.limit)
    dataset = robust.corrupt_dataset(data.points, kinds=args.kinds, seed=args.seed)
    label = f"{args.data} test, {len(data.labels)} clouds x {args.points} points"
    return dataset, data.labels, label


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from deepscope import robust
    from deepscope.models import load_checkpoint
    from deepscope.robust._evaluate import _ensemble_accuracies, format_report

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit: expected >= 1, got {args.limit}")
    if args.points < 1:
        raise ValueError(f"--points: expected >= 1, got {args.points}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size: expected >= 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    plain = _load_model(args.model)
    reference, reference_model = _reference(args)
    epic = critical = None
    if str(args.members) == "none":
        args.members = None
    if args.members is not None and str(args.members) == "shipped":
        from importlib import resources

        args.members = Path(str(resources.files("deepscope.robust") / "weights"))
    if args.members is not None:
        if not args.members.is_dir():
            raise FileNotFoundError(f"--members: {args.members}: no such folder")
        found = {
            name: load_checkpoint(args.members / f"{name}.pt")
            for name in MEMBER_FILES
            if (args.members / f"{name}.pt").is_file()
        }
        methods = ("patch", "curve", "random")
        missing = [m for m in methods if m not in found]
        if missing:
            raise FileNotFoundError(
                f"--members: missing {', '.join(m + '.pt' for m in missing)} in "
                f"{args.members}"
            )
        epic = robust.EPiC.from_backbones([found[m] for m in methods])
        if "critical" in found:
            critical = robust.CriticalSubsetMember(found["critical"])

    dataset, labels, description = _test_set(args)
    bar = None
    if not args.quiet:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(dataset), unit="split", file=sys.stderr)
        except ImportError:
            bar = None

    def progress(model: str, split: str) -> None:
        if bar is not None:
            bar.set_description(split)
            bar.update(1)

    # Members' logits are computed once per split and shared by the ensembles.
    accuracy = _ensemble_accuracies(
        plain,
        epic,
        critical,
        dataset,
        labels,
        references=None if reference_model is None else {reference: reference_model},
        batch_size=args.batch_size,
        progress=progress,
    )
    if bar is not None:
        bar.close()
    kinds = [k for k in robust.CORRUPTIONS if f"{k}_0" in dataset]
    normaliser = None if reference == "published" else accuracy[reference]
    scores = {
        name: robust.mce(acc, normaliser, rounded=not args.unrounded, kinds=kinds)
        for name, acc in accuracy.items()
    }
    report = robust.RobustnessReport(
        accuracy,
        scores,
        "DGCNN (published)" if reference == "published" else reference,
        {},
    )
    print(f"data     {description}")
    print(format_report(report, markdown=args.markdown))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "data": description,
                    "accuracy": report.accuracy,
                    "scores": {k: v._asdict() for k, v in report.scores.items()},
                    "reference": report.reference,
                    "seconds": report.seconds,
                },
                indent=1,
            )
        )
        print(f"wrote    {args.json}")
    return 0
