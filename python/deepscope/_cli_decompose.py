# The `deepscope decompose` subcommand: DXAI panels and the AUC table vs Captum.
# SPDX-License-Identifier: MIT
"""``deepscope decompose [--train] [--checkpoint CKPT] [-o DIR] [--images N]``.

Registered through :func:`add_decompose_command`; the work is done by
:mod:`deepscope.decompose`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_decompose_command"]


def add_decompose_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``decompose`` subcommand to the ``deepscope`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The new subparser (its ``run`` default runs the command and returns the
        exit status).
    """
    cmd = subparsers.add_parser(
        "decompose",
        help="DXAI: split images into class-distinct and class-agnostic parts",
        description=(
            "Load the shipped Fashion-MNIST classifier and DXAI decomposition (or "
            "train a small one with --train), write a panel input / distinct / "
            "agnostic / branches for a few test images, and score DXAI against "
            "Captum Saliency, IntegratedGradients, GradientShap and LayerGradCam "
            "on the global-beta and deletion curves (normalised AUC, lower is "
            "better)."
        ),
    )
    cmd.add_argument("--checkpoint", type=Path, help="bundle written by --save")
    cmd.add_argument(
        "--train", action="store_true", help="train a small model instead of loading"
    )
    cmd.add_argument(
        "--dataset",
        choices=("fashion-mnist", "digits"),
        default="fashion-mnist",
        help="data set for --train (default fashion-mnist)",
    )
    cmd.add_argument(
        "--iterations", type=int, default=300, help="DXAI steps for --train"
    )
    cmd.add_argument("--save", type=Path, help="save the trained bundle here")
    cmd.add_argument(
        "-o", "--output", type=Path, default=Path("decompose_out"), help="output dir"
    )
    cmd.add_argument(
        "--images", type=int, default=4, help="test images in the panel (default 4)"
    )
    cmd.add_argument(
        "--eval-images",
        type=int,
        default=200,
        help="test images scored on the curves (default 200; 0 = skip scoring)",
    )
    cmd.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.set_defaults(run=_run_decompose)
    return cmd


def _run_decompose(args: argparse.Namespace) -> int:
    import torch

    from deepscope.decompose import plot_explanation
    from deepscope.decompose._data import load_digits, load_fashion_mnist
    from deepscope.decompose._default import (
        DEFAULT_CHECKPOINT,
        load_bundle,
        save_bundle,
        train_bundle,
    )
    from deepscope.decompose._scoring import format_auc_table, score_methods

    torch.set_num_threads(max(1, args.threads))
    if args.images < 1 or args.eval_images < 0 or args.iterations < 1:
        print(
            "deepscope decompose: error: expected --images >= 1, --iterations >= 1 "
            "and --eval-images >= 0",
            file=sys.stderr,
        )
        return 2
    if args.train:
        bundle = train_bundle(args.dataset, iterations=args.iterations, seed=args.seed)
        if args.save:
            save_bundle(bundle, args.save)
    else:
        path = args.checkpoint or DEFAULT_CHECKPOINT
        if not Path(path).exists():
            message = f"checkpoint {path} not found (use --train)"
            print(f"deepscope decompose: error: {message}", file=sys.stderr)
            return 2
        bundle = load_bundle(path)
    loader = load_fashion_mnist if bundle.dataset == "fashion-mnist" else load_digits
    try:
        n = max(args.images, args.eval_images)
        te = loader("test", limit=n, seed=args.seed)
    except FileNotFoundError as exc:
        print(f"deepscope decompose: error: {exc}", file=sys.stderr)
        return 2
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    k = min(args.images, len(te.labels))
    t0 = time.perf_counter()
    expl = bundle.dxai.explain(te.images[:k])
    per_image = (time.perf_counter() - t0) / k
    plot_explanation(expl, class_names=bundle.class_names, path=out / "panel.png")
    print(f"dataset: {bundle.dataset}; DXAI steps: {bundle.dxai.iterations}")
    print(f"panel: {out / 'panel.png'} ({k} images, {per_image * 1e3:.1f} ms/image)")
    print(
        "max |x - (distinct + agnostic)| = "
        f"{expl.max_sum_error():.2e}; mean |residual| = "
        f"{float(expl.residual.abs().mean()):.3f}"
    )
    report: dict[str, Any] = {"dataset": bundle.dataset, "meta": bundle.meta}
    if args.eval_images:
        import warnings

        m = min(args.eval_images, len(te.labels))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = score_methods(
                bundle.classifier, te.images[:m], te.labels[:m], dxai=bundle.dxai
            )
        table = format_auc_table(scores)
        print(f"\nnormalised AUC on {m} test images (lower is better):\n{table}")
        (out / "auc.md").write_text(table + "\n")
        report["auc"] = {
            name: {
                curve: {"auc": r.auc, "accuracy": r.accuracy.tolist()}
                for curve, r in curves.items()
            }
            for name, curves in scores.items()
        }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    return 0
