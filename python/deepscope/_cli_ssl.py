# The `deepscope ssl` command: graph SSL accuracy at few labels per class.
# SPDX-License-Identifier: MIT
"""``deepscope ssl``: evaluate graph semi-supervised methods on real data.

Register it in the main parser with ``add_ssl_command(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepscope._cli_common import flag_errors

__all__ = ["add_ssl_command"]


def add_ssl_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``ssl`` sub-command to an argparse sub-parser collection."""
    from deepscope.graph._datasets import DATASETS
    from deepscope.graph._evaluate import METHODS

    ssl = subparsers.add_parser(
        "ssl",
        help="graph semi-supervised accuracy at 1/3/5/10 labels per class",
        description=(
            "Build kNN graphs of a real labelled dataset and report the "
            "accuracy on unlabelled points (mean +- std over seeded, "
            "class-stratified label draws) of L_SSL spectral classification, "
            "Laplace learning, Poisson learning, unsupervised spectral "
            "clustering and scikit-learn's LabelSpreading. The fit-time column "
            "is each method's own time; the kNN graph they share is timed once "
            "and reported below the table."
        ),
    )
    ssl.add_argument(
        "--dataset", choices=DATASETS, default="digits", help="default: digits"
    )
    ssl.add_argument(
        "-n", type=int, default=None, help="use a seeded random subset of n points"
    )
    ssl.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[1, 3, 5, 10],
        help="labels per class (default: 1 3 5 10)",
    )
    ssl.add_argument(
        "--seeds", type=int, default=10, help="label draws per rate (default: 10)"
    )
    ssl.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="methods to run (default: all)",
    )
    ssl.add_argument(
        "-k", type=int, default=10, help="neighbours of the base graph (default: 10)"
    )
    ssl.add_argument("--png", type=Path, help="write a plot of accuracy vs labels")
    ssl.add_argument("--json", action="store_true", help="print results as JSON")
    ssl.set_defaults(run=run_ssl)
    return ssl


def run_ssl(args: argparse.Namespace) -> int:
    """Runs the evaluation and prints the table (or JSON)."""
    from deepscope.graph._datasets import load_dataset
    from deepscope.graph._evaluate import evaluate_ssl, format_table, plot_accuracy

    for name in ("labels", "seeds", "k", "n"):
        value = getattr(args, name)
        values = value if isinstance(value, list) else [value]
        if any(v is not None and v < 1 for v in values):
            flag = f"-{name}" if len(name) == 1 else f"--{name}"
            raise ValueError(f"{flag}: expected positive integers, got {value}")
    # Checked before the (slow) evaluation, which --json prints ahead of the plot.
    if args.png is not None and not args.png.parent.is_dir():
        raise ValueError(f"--png: folder {args.png.parent} does not exist")
    with flag_errors({"n": "-n"}):
        X, y = load_dataset(args.dataset, n=args.n)
    hint = ""
    if args.n is not None:
        hint = f" (or raise -n: {args.n} points leave too few per class)"
    with flag_errors({"labels_per_class": "--labels"}, hint):
        ev = evaluate_ssl(
            X,
            y,
            labels_per_class=tuple(args.labels),
            n_seeds=args.seeds,
            methods=tuple(args.methods),
            n_neighbors=args.k,
        )
    title = f"{args.dataset} ({len(y)} points)"
    if args.json:
        out = {
            "dataset": args.dataset,
            "n_points": ev.n_points,
            "config": ev.config,
            "seconds": ev.seconds,
            "accuracy": {
                m: {str(r): a.tolist() for r, a in by.items()}
                for m, by in ev.accuracy.items()
            },
        }
        json.dump(out, sys.stdout, indent=1)
        print()
    else:
        print(format_table(ev, title))
    if args.png is not None:
        plot_accuracy(ev, args.png, title)
        # Standard error: with --json, standard output holds only the JSON.
        print(f"wrote {args.png}", file=sys.stderr if args.json else sys.stdout)
    return 0
