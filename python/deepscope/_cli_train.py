# The `deepscope train` command: train PointNet / DGCNN on labelled point clouds.
# SPDX-License-Identifier: MIT
"""``deepscope train --model pointnet|dgcnn --data fashion-mnist|digits -o CKPT.pt``.

Trains a classifier on Fashion-MNIST (Debian ``dataset-fashion-mnist``) or the
scikit-learn digits as point clouds, shows a progress bar, prints a short
summary, and writes the checkpoint plus a training-curve PNG next to it
(``CKPT.png``). Registered in :mod:`deepscope.cli` through
:func:`add_train_command`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["add_train_command"]

MODELS = ("pointnet", "dgcnn")
DATASETS = ("fashion-mnist", "digits")


def add_train_command(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the ``train`` sub-command to the ``deepscope`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The ``train`` parser (its ``run`` default runs the command and returns
        the exit status).
    """
    train = subparsers.add_parser(
        "train",
        help="train PointNet or DGCNN on labelled point clouds",
        description=(
            "Train a point-cloud classifier on Fashion-MNIST (apt-get install -y "
            "dataset-fashion-mnist) or the scikit-learn digits, turned into "
            "2.5-D point clouds; write the checkpoint and a training-curve PNG."
        ),
    )
    train.add_argument("--model", choices=MODELS, default="pointnet")
    train.add_argument("--data", choices=DATASETS, default="fashion-mnist")
    train.add_argument("--epochs", type=int, default=10, help="default: 10")
    train.add_argument(
        "--points", type=int, default=256, help="points per cloud (default: 256)"
    )
    train.add_argument(
        "--limit", type=int, default=None, help="use the first N training clouds"
    )
    train.add_argument(
        "--test-limit", type=int, default=None, help="use the first N test clouds"
    )
    train.add_argument("--batch-size", type=int, default=32, help="default: 32")
    train.add_argument("--lr", type=float, default=1e-3, help="default: 0.001")
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    train.add_argument("--label-smoothing", type=float, default=0.0, help="default: 0")
    train.add_argument(
        "--emb-dims", type=int, default=1024, help="feature width (default: 1024)"
    )
    train.add_argument(
        "--k", type=int, default=20, help="DGCNN neighbours (default: 20)"
    )
    train.add_argument(
        "--no-augment", action="store_true", help="no scale/shift/shuffle augmentation"
    )
    train.add_argument("--seed", type=int, default=0, help="default: 0")
    train.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default: cpu)")
    train.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch"
    )
    train.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="checkpoint (default: MODEL_DATA.pt in the current folder)",
    )
    train.add_argument("--no-png", action="store_true", help="write no training curve")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_run_train)
    return train


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from deepscope import pointsets
    from deepscope.models import DGCNN, PointNet, save_checkpoint, train_classifier

    for name in ("epochs", "points", "batch_size", "emb_dims", "k"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 1")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    output = args.output or Path(f"{args.model}_{args.data.replace('-', '')}.pt")
    if not output.parent.is_dir():
        raise ValueError(f"-o: folder {output.parent} does not exist")

    # Data: the clouds of both splits, seeded.
    load = (
        pointsets.fashion_mnist_points
        if args.data == "fashion-mnist"
        else pointsets.digits_points
    )
    train = load("train", args.points, seed=args.seed, limit=args.limit)
    test = load("test", args.points, seed=args.seed, limit=args.test_limit)
    num_classes = len(train.class_names)

    # Model and training.
    torch.manual_seed(args.seed)
    if args.model == "pointnet":
        model: Any = PointNet(num_classes, emb_dims=args.emb_dims)
    else:
        model = DGCNN(num_classes, k=args.k, emb_dims=args.emb_dims)
    start = time.perf_counter()
    history = train_classifier(
        model,
        train,
        test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        label_smoothing=args.label_smoothing,
        augment=not args.no_augment,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    accuracy = history["test_acc"][-1]

    meta = {
        "class_names": list(train.class_names),
        "dataset": args.data,
        "n_points": args.points,
        "points_seed": args.seed,
        "train_samples": len(train.labels),
        "test_samples": len(test.labels),
        "epochs": args.epochs,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "augment": not args.no_augment,
        "train_seconds": round(seconds, 1),
        "history": history,
        "test_accuracy": accuracy,
    }
    path = save_checkpoint(model.cpu(), output, meta=meta)
    png = None if args.no_png else _plot_history(history, path.with_suffix(".png"))

    print(
        f"{args.model} on {args.data} ({len(train.labels)} train / "
        f"{len(test.labels)} test clouds, {args.points} points): test accuracy "
        f"{accuracy:.4f} after {args.epochs} epochs in {seconds:.1f} s"
    )
    print(f"checkpoint: {path}")
    if png is not None:
        print(f"curve:      {png}")
    return 0


def _plot_history(history: dict[str, list[float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, history["train_loss"], marker="o")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("train loss")
    acc_ax.plot(epochs, history["train_acc"], marker="o", label="train")
    acc_ax.plot(epochs, history["test_acc"], marker="o", label="test")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1)
    acc_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
